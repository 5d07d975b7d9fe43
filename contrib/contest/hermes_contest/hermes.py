"""hermes: a small client of hermesd's HTTP API (man hermesd(8)).

Every failure raises HermesError whose text names the URL, the method and
hermesd's own error message. Bodies read from hermesd are capped by the
caller (limit), so a job's huge output file cannot exhaust the service.
"""
import json
import urllib.error
import urllib.request


class HermesError(Exception):
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


class Hermes:
    def __init__(self, url, token, timeout=30):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method, path, body=None, headers=None, limit=1 << 20):
        url = self.url + path
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        req = urllib.request.Request(url, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.read(limit)
        except urllib.error.HTTPError as e:
            text = e.read(4096).decode(errors="replace")
            try:
                text = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                pass
            raise HermesError(f"hermesd {method} {url}: HTTP {e.code}: {text}", e.code) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise HermesError(f"hermesd {method} {url}: {reason}") from None

    def submit(self, archive, job):
        """Start a job: archive is a tar.gz, job the X-Hermes-Job dict. The id."""
        body = self._request("POST", "/v1/jobs", archive,
                             {"X-Hermes-Job": json.dumps(job), "Content-Type": "application/gzip"})
        return json.loads(body)["id"]

    def job(self, job_id):
        return json.loads(self._request("GET", f"/v1/jobs/{job_id}"))

    def logs(self, job_id, limit=1 << 20):
        return self._request("GET", f"/v1/jobs/{job_id}/logs", limit=limit)

    def file(self, job_id, path, limit=1 << 20):
        """A file of the job's workspace (at most limit bytes); None when the
        job made none there."""
        try:
            return self._request("GET", f"/v1/jobs/{job_id}/files/{path}", limit=limit)
        except HermesError as e:
            if e.status == 404:
                return None
            raise

    def cancel(self, job_id):
        self._request("DELETE", f"/v1/jobs/{job_id}")
