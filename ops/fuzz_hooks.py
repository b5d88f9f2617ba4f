"""schemathesis hooks for ./ops/fuzz: the ids and names a spec cannot know.

A generated body names a plan, a region or a database engine at random, and
the API refuses it (422): create operations then never succeed, and the
stateful phase never walks create -> read -> change -> delete. Here half of
the generated bodies of those operations get the run's seeded values (the
other half keep what was generated, so refusals stay tested). The values come
from the environment ./ops/fuzz sets.
"""

import itertools
import os

import schemathesis
from hypothesis import strategies as st

PLAN = int(os.environ.get("FUZZ_PLAN_ID", "1"))
REGION = os.environ.get("FUZZ_REGION", "local")
IMAGE = os.environ.get("FUZZ_IMAGE", "nginx:1.27")
ENGINE_TYPE = os.environ.get("FUZZ_ENGINE_TYPE", "postgresql")
ENGINE_VERSION = os.environ.get("FUZZ_ENGINE_VERSION", "16")
CUSTOMER = os.environ.get("FUZZ_CUSTOMER_ID", "1")
EVENTS = ["build.succeeded", "build.failed", "app.crashed", "balance.low"]
# Names must be unique per customer; hypothesis keeps drawing the same small
# ones ("000"), so seeded bodies get a fresh one each.
_names = itertools.count(1)


def fresh(prefix):
    return f"{prefix}{os.getpid()}-{next(_names)}"


def seeded(body, fields, drop=(), name=None):
    """The generated body, or the same with `fields` set (and a fresh `name`
    with that prefix), drawn first: what hypothesis shrinks towards."""
    if not isinstance(body, dict):
        return st.just(body)
    fixed = {k: v for k, v in body.items() if k not in drop}
    fixed.update(fields)
    if name is not None:
        fixed["name"] = fresh(name)
    return st.sampled_from([fixed, body])


@schemathesis.hook("flatmap_body").apply_to(name="POST /paas/applications")
def application(ctx, body):
    return seeded(
        body,
        {"plan_id": PLAN, "region": REGION, "image": IMAGE},
        drop=("git_repo_url", "git_branch", "git_oauth_token", "runtime_id"),
        name="app",
    )


@schemathesis.hook("flatmap_body").apply_to(name="PUT /paas/applications/{id}")
def application_change(ctx, body):
    return seeded(
        body,
        {"plan_id": PLAN},
        drop=("git_repo_url", "git_branch", "git_oauth_token", "runtime_id", "image"),
    )


@schemathesis.hook("flatmap_body").apply_to(name="POST /paas/databases")
def database(ctx, body):
    return seeded(
        body,
        {"plan_id": PLAN, "region": REGION, "db_type": ENGINE_TYPE, "version": ENGINE_VERSION},
        name="db",
    )


@schemathesis.hook("flatmap_body").apply_to(name="POST /paas/webhooks")
def webhook(ctx, body):
    return seeded(body, {"events": EVENTS})


@schemathesis.hook("flatmap_body").apply_to(name="POST /admin/paas/plans")
def plan(ctx, body):
    return seeded(body, {"supported_runtimes": []}, name="plan")


@schemathesis.hook("flatmap_body").apply_to(name="POST /admin/paas/nodes/register")
def node(ctx, body):
    return seeded(body, {}, name="node")


@schemathesis.hook("flatmap_body").apply_to(name="POST /admin/paas/database-engines")
def engine(ctx, body):
    if not isinstance(body, dict):
        return st.just(body)
    return st.sampled_from([{**body, "version": fresh("v")}, body])


@schemathesis.hook("flatmap_path_parameters").apply_to(name="POST /admin/wallets/{userId}/credit")
def credit(ctx, parameters):
    if not isinstance(parameters, dict):
        return st.just(parameters)
    return st.sampled_from([{**parameters, "userId": int(CUSTOMER)}, parameters])


@schemathesis.hook("flatmap_query").apply_to(method="GET")
def first_page(ctx, query):
    """Lists read from their first page half of the time: a random offset
    answers an empty page, whose links have no ids to hand on."""
    if not isinstance(query, dict) or not query:
        return st.just(query)
    kept = {k: v for k, v in query.items() if k not in ("offset", "limit", "before", "after")}
    return st.sampled_from([kept, query])


APPS = [int(i) for i in os.environ.get("FUZZ_APP_IDS", "").split(",") if i]


@schemathesis.hook("flatmap_path_parameters").apply_to(
    path_regex=r"^/paas/applications/\{id\}", method=["GET", "POST", "PUT"]
)
def known_application(ctx, parameters):
    """Operations on an application start, half of the time, from one of the
    customer's seeded applications (a random id is a 404 with nothing to
    hand on)."""
    if not isinstance(parameters, dict) or "id" not in parameters or not APPS:
        return st.just(parameters)
    return st.sampled_from([{**parameters, "id": app} for app in APPS] + [parameters])


SECRETS = dict(
    pair.split(":", 1) for pair in os.environ.get("FUZZ_HOOK_SECRETS", "").split(",") if ":" in pair
)


@schemathesis.hook("before_call").apply_to(name="POST /paas/webhooks/git/{appId}")
def signed_push(ctx, case, kwargs):
    """A push event for a seeded application is signed with its webhook
    secret (the spec cannot say how), so the event is read, not refused."""
    secret = SECRETS.get(str((case.path_parameters or {}).get("appId")))
    if secret is None or not isinstance(case.body, (dict, list)):
        return
    import hashlib
    import hmac
    import json

    try:
        body = json.dumps(case.body, allow_nan=False).encode()
    except ValueError:
        return
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    case.headers = {**(case.headers or {}), "X-Hub-Signature-256": f"sha256={digest}"}


@schemathesis.hook("flatmap_path_parameters").apply_to(name="POST /paas/webhooks/git/{appId}")
def known_push_target(ctx, parameters):
    if not isinstance(parameters, dict) or not APPS:
        return st.just(parameters)
    return st.sampled_from([{**parameters, "appId": app} for app in APPS] + [parameters])


class Seeded:
    """The seeded applications' states as ops/fuzz left them, and one psql
    session that puts an application back in its state: no agent finishes
    the tasks a stop, a delete or a deploy queues, so without this the first
    such call would leave it stopping or deleting for the rest of the run,
    and every command after it a 409 with nothing to hand on."""

    def __init__(self, url):
        import subprocess

        self.session = subprocess.Popen(
            ["psql", url, "-X", "-q", "-A", "-t", "-F", ":"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        ids = ", ".join(str(app) for app in APPS)
        self.states = {}
        for line in self.query(
            f"SELECT id, status, coalesce(node_id::text, 'NULL'), coalesce(current_release_id::text, 'NULL')"
            f"  FROM paas_applications WHERE id IN ({ids});"
        ):
            app, status, node, release = line.split(":")
            self.states[int(app)] = (status, node, release)

    def query(self, sql):
        self.session.stdin.write(sql + "\n\\echo __done__\n")
        self.session.stdin.flush()
        lines = []
        for line in self.session.stdout:
            line = line.strip()
            if line == "__done__":
                return lines
            if line:
                lines.append(line)
        raise RuntimeError("the fuzzer's psql session ended")

    def reset(self, app):
        if app not in self.states:
            return
        status, node, release = self.states[app]
        self.query(
            f"BEGIN;"
            f" UPDATE paas_tasks SET status = 'failed', error = 'reset by ops/fuzz', finished_at = now()"
            f"  WHERE application_id = {app} AND status IN ('queued', 'leased', 'running');"
            f" UPDATE paas_builds SET status = 'failed', completed_at = now()"
            f"  WHERE application_id = {app} AND status IN ('pending', 'building');"
            f" DELETE FROM paas_app_requests WHERE application_id = {app};"
            f" UPDATE paas_applications SET status = '{status}', node_id = {node},"
            f"        current_release_id = {release}, version = version + 1"
            f"  WHERE id = {app} AND (status <> '{status}' OR node_id IS DISTINCT FROM {node}"
            f"        OR current_release_id IS DISTINCT FROM {release});"
            f" COMMIT;"
        )


_seeded = None


@schemathesis.hook("before_call").apply_to(path_regex=r"^/paas/(applications/\{id\}|webhooks/git/\{appId\})")
def seeded_state(ctx, case, kwargs):
    """A call on a seeded application finds it in its seeded state."""
    global _seeded
    url = os.environ.get("FUZZ_DATABASE_URL")
    if not url or not APPS:
        return
    if _seeded is None:
        _seeded = Seeded(url)
    parameters = case.path_parameters or {}
    app = parameters.get("id", parameters.get("appId"))
    if isinstance(app, int):
        _seeded.reset(app)


@schemathesis.hook("before_call").apply_to(method="GET")
def no_stream_in_chains(ctx, case, kwargs):
    """A followed read (`follow=true`) is a Server-Sent Events stream that
    stays open until the client leaves: the examples, coverage and fuzzing
    phases read its events (checked against the spec's event schema) until
    the request timeout; in a stateful chain it would spend that timeout at
    every step and hand on no ids, so chains read the JSON answer."""
    meta = getattr(case, "meta", None)
    if meta is None or str(meta.phase.name) != "stateful":
        return
    if isinstance(case.query, dict) and "follow" in case.query:
        case.query = {k: v for k, v in case.query.items() if k != "follow"}
