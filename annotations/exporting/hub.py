"""Upload an export folder to the Hugging Face Hub as a dataset repo.

The token is passed in by the caller (read from an environment variable it names); it is
never stored on the job, printed or put in an error message.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ExportError


def push_to_hub(folder: Path, repo_id: str, *, token: str, private: bool = False,
                endpoint: str | None = None, message: str = "Export from SPIDER Web") -> str:
    """Create the dataset repo if needed and commit the folder; returns the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                                   repo_type="dataset", commit_message=message)
    except OfflineModeIsEnabled as exc:
        raise ExportError(f"cannot push to the Hub: HF_HUB_OFFLINE is set ({exc})") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise ExportError(f"the Hub refused the upload of {repo_id!r} (HTTP {status}); check "
                          "the repo id and that the token may write to it") from None
    return str(commit.commit_url)
