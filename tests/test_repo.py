"""Git helpers for earlier commits: temporary worktrees and clones, the remote URL."""

from __future__ import annotations

import pytest

from smttask import repo
from smttask.errors import GitError


def test_a_checkout_shows_the_commit_and_leaves_no_trace(proj):
    first = proj.git("rev-parse", "HEAD").strip()
    proj.write("reports/notes.md", "# changed later\n")
    proj.commit("later")
    proj.write("reports/notes.md", "# uncommitted\n")  # the user's work in progress

    with repo.checkout(proj.root, first) as tree:
        assert (tree / "reports" / "notes.md").read_text() == "# notes\n"
        assert len(proj.git("worktree", "list").splitlines()) == 2

    assert not tree.exists()
    assert len(proj.git("worktree", "list").splitlines()) == 1
    assert (proj.root / "reports" / "notes.md").read_text() == "# uncommitted\n"
    assert proj.git("rev-parse", "HEAD").strip() != first


def test_a_checkout_applies_a_diff_or_says_it_cannot(proj):
    head = proj.git("rev-parse", "HEAD").strip()
    proj.write("reports/notes.md", "# notes\nmore\n")
    diff = proj.git("diff", "HEAD")
    proj.git("checkout", "--", ".")
    with repo.checkout(proj.root, head, diff) as tree:
        assert (tree / "reports" / "notes.md").read_text() == "# notes\nmore\n"
    with pytest.raises(GitError, match="the recorded diff does not apply"):
        with repo.checkout(proj.root, head, diff.replace("# notes", "# other")):
            pass
    assert len(proj.git("worktree", "list").splitlines()) == 1


def test_an_unknown_commit_is_a_git_error(proj):
    with pytest.raises(GitError, match="commit 0123456789 is not in the repository"):
        with repo.checkout(proj.root, "0123456789" * 4):
            pass


def test_a_clone_is_temporary(proj):
    head = proj.git("rev-parse", "HEAD").strip()
    with repo.clone(str(proj.root)) as clone:
        assert repo.has_commit(clone, head)
        with repo.checkout(clone, head) as tree:
            assert (tree / "smttask.toml").is_file()
    assert not clone.exists()
    with pytest.raises(GitError, match="cannot clone"):
        with repo.clone(str(proj.root / "nowhere")):
            pass


def test_the_remote_url_never_carries_credentials(proj):
    assert repo.remote_url(proj.root) is None
    proj.git("remote", "add", "upstream", "https://alice:s3cret@example.org/lab/proj.git")
    assert repo.remote_url(proj.root) == "https://example.org/lab/proj.git"
    proj.git("remote", "add", "origin", "git@example.org:lab/proj.git")
    assert repo.remote_url(proj.root) == "git@example.org:lab/proj.git"


def test_git_in_a_missing_folder_says_so(tmp_path):
    with pytest.raises(GitError, match="does not exist"):
        repo.state(tmp_path / "missing")
