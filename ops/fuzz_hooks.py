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
