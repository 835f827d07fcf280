"""experiments.jobs: an output folder is used by one experiment at a time."""

import pytest

from experiments.jobs import FolderInUse, Job, lock_folder, run_jobs

fcntl = pytest.importorskip("fcntl", reason="folder locks need fcntl (POSIX)")


def test_a_second_experiment_in_the_same_folder_is_refused(tmp_path):
    first = lock_folder(tmp_path / "out")
    with pytest.raises(FolderInUse, match="is in use by another experiment"):
        lock_folder(tmp_path / "out")
    job = Job("sbu", "unused", "dense", "dense", (), 1, str(tmp_path / "out"))
    with pytest.raises(FolderInUse):       # refused before any job is looked at or trained
        run_jobs([job], workers=0)
    lock_folder(tmp_path / "other").close()   # other folders are free
    first.close()
    lock_folder(tmp_path / "out").close()     # released with its holder
