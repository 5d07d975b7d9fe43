"""web_check.py URL UPLOAD_TGZ PROBLEM_TGZ WORKDIR: the contest page in
headless Chromium, driven through chromedriver's W3C WebDriver HTTP API
(urllib only).

Logs in as alpha (after a refused wrong password), submits UPLOAD_TGZ through
the file input, waits for the verdict "accepted" to appear in the table, opens
its logs, and reads the scoreboard. Then logs out and in as admin, adds the
problem PROBLEM_TGZ through the admin form and rejudges alpha's submission
with its button. Exits non-zero with the reason on failure.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

URL, UPLOAD, PROBLEM, WORK = sys.argv[1:5]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element key


def fail(msg):
    print(f"web_check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.sid = None

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            fail(f"webdriver {method} {path}: HTTP {e.code}: {e.read()[:500]!r}")

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.sid}{path}", body)

    def find(self, css):
        v = self.s("POST", "/element", {"using": "css selector", "value": css})
        if not isinstance(v, dict) or ELEMENT not in v:
            fail(f"no element {css}: {v}")
        return v[ELEMENT]

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def wait(self, what, script, timeout=60, *args):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.js(script, *args)
            if v:
                return v
            time.sleep(0.2)
        fail(f"waited {timeout} s for {what}; page: "
             + str(self.js("return document.body.innerText;"))[:2000])


def main():
    port = free_port()
    log = open(os.path.join(WORK, "chromedriver.log"), "w")
    cd = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=log, stderr=log)
    try:
        d = Driver(port)
        for _ in range(150):
            try:
                with urllib.request.urlopen(d.base + "/status", timeout=2) as r:
                    if json.loads(r.read())["value"]["ready"]:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            fail("chromedriver did not become ready in 15 s")
        binary = "/usr/lib/chromium/chromium"
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": binary if os.path.exists(binary) else "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={os.path.join(WORK, 'chromium-profile')}"]}}}}
        d.sid = d.call("POST", "/session", caps)["sessionId"]
        try:
            flow(d)
        finally:
            d.call("DELETE", f"/session/{d.sid}")
    finally:
        cd.terminate()
        cd.wait(timeout=30)


def flow(d):
    d.s("POST", "/url", {"url": URL})
    d.wait("the login form", "return !document.getElementById('login-view').hidden;")

    d.type("#login-team", "alpha")
    d.type("#login-password", "wrong")
    d.click("#login-button")
    d.wait("the refused login", "return document.getElementById('login-error').textContent"
           ".includes('wrong password');")

    d.js("document.getElementById('login-password').value = '';")
    d.type("#login-password", "PW_alpha")
    d.click("#login-button")
    d.wait("the team view", "return !document.getElementById('team-view').hidden && "
           "document.getElementById('who').textContent === 'Team alpha';")
    d.wait("the problem list", "return document.querySelectorAll('#submit-problem option').length > 0;")
    if not d.js("return document.getElementById('admin').hidden;"):
        fail("a team sees the admin section")

    d.type("#submit-file", UPLOAD)
    d.click("#submit-button")
    d.wait("the queued message", "return /Submission \\d+ queued/.test("
           "document.getElementById('submit-status').textContent);")
    verdict = d.wait("the verdict", """
        const tr = document.querySelector('#submissions tbody tr');
        return tr && tr.dataset.verdict ? tr.dataset.verdict : null;""", 240)
    if verdict != "accepted":
        fail(f"verdict shown: {verdict}")
    text = d.js("return document.querySelector('#submissions tbody tr .verdict').textContent;")
    if text != "accepted":
        fail(f"verdict cell says {text!r}")

    d.click("#submissions tbody tr .logs-button")
    d.wait("the logs", "return document.getElementById('details').textContent.includes('speedup');")

    board = d.wait("alpha on the scoreboard", """
        const tr = document.querySelector('#scoreboard tbody tr');
        return tr && tr.dataset.team === 'alpha' && parseFloat(tr.querySelector('.total').textContent) > 0
            ? document.getElementById('scoreboard').innerText : null;""", 30)
    print("web_check: scoreboard as shown:\n" + board)
    admin(d)
    print("web_check: all passed")


def admin(d):
    d.click("#logout-button")
    d.wait("the login form again", "return !document.getElementById('login-view').hidden;")
    d.js("document.getElementById('login-team').value = '';"
         "document.getElementById('login-password').value = '';")
    d.type("#login-team", "admin")
    d.type("#login-password", "PW_admin")
    d.click("#login-button")
    d.wait("the admin section", "return !document.getElementById('admin').hidden;")

    d.type("#problem-file", PROBLEM)
    d.click("#problem-button")
    d.wait("the added problem", "return document.getElementById('admin-status').textContent"
           " === 'Problem vecadd is at version 1' && "
           "document.querySelectorAll('#submit-problem option').length === 2;")

    sid = d.wait("alpha's submission in the admin's list", """
        const tr = document.querySelector('#submissions tbody tr');
        return tr && tr.children[1].textContent === 'alpha' ? tr.dataset.id : null;""")
    d.click("#submissions tbody tr .rejudge-button")
    d.wait("the rejudged submission", """
        const tr = document.querySelector('#submissions tbody tr');
        if (!tr || tr.dataset.verdict !== 'accepted') return false;
        const r = new XMLHttpRequest();
        r.open('GET', '/api/submissions/' + arguments[0], false);
        r.send();
        const s = JSON.parse(r.responseText);
        return s.judgings.length === 2 && s.judgings[1].status === 'done';""", 240, sid)


main()
