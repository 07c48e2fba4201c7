"""Memory of the web tier: gunicorn workers' RSS after serving the pages people use.

Why: a web worker that imports torch holds ~900 MiB before it serves anything; the web tier
must stay light (goal <= 200 MiB a worker). This imports a small SPIDER folder cut from the
real sample into a fresh SQLite database, starts gunicorn (2 workers x 4 threads, as in the
Dockerfile), logs in, requests the project page, the patch browser, a patch page, the review
page, grid mode, the reviewers page, tiles and the API 20 times each, then reads every
worker's VmRSS and VmHWM from /proc and prints them, with whether torch is in its memory
maps (it is not imported if no torch library file is mapped).

Usage: .venv/bin/python bench/web_memory_bench.py [--slides 2]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.review_bench import gunicorn  # noqa: E402

PASSWORD = "web-memory-bench"


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                          check=True, capture_output=True, text=True).stdout


def login(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/accounts/login/")
    response = conn.getresponse()
    page = response.read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    cookie = response.getheader("Set-Cookie").split(";")[0]
    conn.request("POST", "/accounts/login/",
                 urlencode({"username": "bench", "password": PASSWORD,
                            "csrfmiddlewaretoken": csrf}),
                 {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
                  "Referer": f"http://127.0.0.1:{port}/accounts/login/"})
    response = conn.getresponse()
    response.read()
    session = [c for c in response.headers.get_all("Set-Cookie") if "sessionid" in c]
    assert response.status == 302 and session, f"login failed: {response.status}"
    return f"{cookie}; {session[0].split(';')[0]}"


def status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slides", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="web-memory-"))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
           "MEDIA_ROOT": str(tmp / "media"), "SECRET_KEY": "web-memory-bench-" + "x" * 40,
           "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "spider_web.settings"}
    env.pop("REDIS_URL", None)
    os.environ.update(env)
    from annotations.sample_data import build_spider_folder

    build_spider_folder(tmp / "SPIDER-demo", slides=args.slides, compress_level=1)
    manage(env, "migrate", "-v", "0")
    manage(env, "import_spider", str(tmp / "SPIDER-demo"), "--project", "bench", "--json")
    manage(env, "shell", "-v", "0", "-c",
           "from django.contrib.auth import get_user_model as g; "
           "from annotations.actions import set_membership; "
           "from annotations.models import Project; "
           f"u = g().objects.create_user('bench', password='{PASSWORD}'); "
           "set_membership(Project.objects.get(slug='bench'), u, 'admin')")
    ids = manage(env, "shell", "-v", "0", "-c",
                 "from annotations.models import Patch; p = Patch.objects.first(); "
                 "print(p.id, p.centre_tile_id)").split()
    pages = ["/", "/p/bench/", "/p/bench/patches/", f"/p/bench/patches/{ids[0]}/",
             "/p/bench/review/?queue=unreviewed", "/p/bench/review/grid/?queue=unreviewed",
             "/p/bench/reviewers/", f"/tiles/{ids[1]}/", "/api/projects/bench/patches/",
             "/api/projects/bench/queues/"]
    with gunicorn(2, 4) as (port, server):
        cookie = login(port)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for _ in range(20):
            for page in pages:
                conn.request("GET", page, headers={"Cookie": cookie})
                response = conn.getresponse()
                response.read()
                assert response.status == 200, (page, response.status)
        workers = [int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children")
                   .read_text().split()]
        for pid in workers:
            maps = Path(f"/proc/{pid}/maps").read_text()
            torch = "libtorch" in maps or "/torch/" in maps
            print(f"gunicorn worker {pid}: RSS {status_kib(pid, 'VmRSS') / 1024:.0f} MiB, "
                  f"peak {status_kib(pid, 'VmHWM') / 1024:.0f} MiB, torch loaded: {torch}")
        print(f"master {server.pid}: RSS {status_kib(server.pid, 'VmRSS') / 1024:.0f} MiB; "
              f"{len(pages) * 20} requests served")


if __name__ == "__main__":
    main()
