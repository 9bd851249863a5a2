"""Git state of the project: the commit, and the changes that block a recorded run.

The only package that runs git. A recorded run needs a tree that is clean outside the
*dirty directories*: staged or unstaged changes to tracked files block it, and so does an
untracked Python file inside the task's own package (it could be imported without ever
being committed). Changes inside dirty directories never block; they are reported as
tolerated so that the record can say so.

Modules: :mod:`.git` (runs git), :mod:`.state` (what blocks a recorded run),
:mod:`.history` (earlier commits and remotes).
"""

from __future__ import annotations

from .git import (
    commit_all,
    commit_file,
    git_user,
    in_repository,
    merge_texts,
    repo_root,
    uncommitted,
)
from .history import checkout, clone, has_commit, remote_url
from .state import (
    Checked,
    RepoState,
    code_location,
    diff,
    loaded_code,
    new_files_diff,
    pin,
    require_recordable,
    require_tracked,
    state,
    unblock_hint,
    untracked,
)

__all__ = [
    "Checked",
    "RepoState",
    "checkout",
    "clone",
    "code_location",
    "commit_all",
    "commit_file",
    "diff",
    "git_user",
    "has_commit",
    "in_repository",
    "loaded_code",
    "new_files_diff",
    "merge_texts",
    "pin",
    "remote_url",
    "repo_root",
    "require_recordable",
    "require_tracked",
    "state",
    "unblock_hint",
    "uncommitted",
    "untracked",
]

