"""Fifty people sign in at the same moment; each ends up with their own identity and nobody else's."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.conftest import Stack, sign_in

USERS = 50


def test_fifty_simultaneous_sign_ins_stay_apart(stack: Stack):
    start = threading.Barrier(USERS)

    def visit(number: int) -> tuple[str, str, str]:
        username = f"crowd-{number:02d}"
        http = requests.Session()
        start.wait()
        assert sign_in(stack, http, username).status_code == 302
        profile = http.get(stack.base_url + "/profile", timeout=30)
        assert profile.status_code == 200
        shown_usernames = set(re.findall(r"crowd-\d\d", profile.text))
        user_id = re.search(r"<dt>User id</dt><dd>([^<]+)</dd>", profile.text).group(1)
        return username, user_id, ",".join(sorted(shown_usernames))

    with ThreadPoolExecutor(USERS) as pool:
        results = list(pool.map(visit, range(USERS)))

    assert [shown for _, _, shown in results] == [username for username, _, _ in results]
    assert len({user_id for _, user_id, _ in results}) == USERS
