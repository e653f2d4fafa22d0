"""schemathesis hooks for .ci/fuzz-openapi: credentials that let generated cases reach the handlers.

Without them nearly every case stops at a refusal (a random customerId, a missing or spent
authorize token, a RequestId that was never issued). Here every public case addresses the toolbox
customer with the credential its endpoint reads; /Authorize gets a fresh authorize token per case
(tokens are single use) and, in most cases, the sandbox bank's test credentials; the data
endpoints get the RequestId of a fresh authorized session. The rest of each case stays generated.
On exit, a table of how many cases of each operation answered 2xx goes to FUZZ_STATS (a file).
"""

import atexit
import collections
import json
import os
import random
import urllib.error
import urllib.request

import schemathesis

# The public toolbox credentials (README, "Walkthrough with curl").
CUSTOMER = "43387ca6-0391-4c82-857d-70d95f087ecb"
SECRET_KEY = "c4569c54-e167-4d34-8de6-f4113bc82414"
API_KEY = "3d5266a8-b697-48d4-8de6-52e2e2662acc"
PUBLIC = os.environ.get("FUZZ_PUBLIC_URL", "")
ADMIN = os.environ.get("FUZZ_ADMIN_URL", "")
ADMIN_TOKEN = os.environ.get("FUZZ_ADMIN_TOKEN", "")
STATS = os.environ.get("FUZZ_STATS", "")
# Sandbox users that connect without MFA (the others answer 203 or a refusal, also fine).
USERS = ["greatday_nomfa", "greatday_nomfa", "Greatday", "test_pending", "test_disabled_account"]

# Deterministic across runs, like the schemathesis seed.
rng = random.Random(1)
counts = collections.defaultdict(collections.Counter)
refusals = collections.defaultdict(collections.Counter)


def call(endpoint, headers, body=None):
    """POSTs to a toolbox endpoint; returns the JSON answer (errors too)."""
    request = urllib.request.Request(
        f"{PUBLIC}/v3/{CUSTOMER}/BankingServices/{endpoint}",
        data=json.dumps(body).encode() if body is not None else b"",
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def admin_post(path, body):
    request = urllib.request.Request(
        f"{ADMIN}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def admin_delete(path):
    request = urllib.request.Request(
        f"{ADMIN}{path}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        method="DELETE",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def admin_login_id():
    """A new sandbox LoginId of the toolbox customer, made through the admin API."""
    return admin_post(f"/admin/customers/{CUSTOMER}/logins", {"username": "Greatday"})["loginId"]


spare = []


def spare_customer():
    """A customer whose keys may be rotated: rotating the toolbox's would lock the hooks out."""
    if not spare:
        created = admin_post("/admin/customers", {"instance": "toolbox", "label": "fuzz"})
        spare.append(created["customerId"])
    return spare[0]


def fresh_token():
    return call("GenerateAuthorizeToken", {"flinks-auth-key": SECRET_KEY})["Token"]


def authorized_request_id():
    """The RequestId of a new session authorized without MFA."""
    answer = call(
        "Authorize",
        {"flinks-auth-key": fresh_token()},
        {
            "Institution": "FlinksCapital",
            "Username": "greatday_nomfa",
            "Password": "Everyday",
            "MostRecentCached": False,
            "Save": True,
        },
    )
    return answer["RequestId"]


def enrolled_login_id():
    """A new saved card that keeps its security questions (Enhanced MFA), without MFA."""
    answer = call(
        "Authorize",
        {"flinks-auth-key": fresh_token()},
        {
            "Institution": "FlinksCapital",
            "Username": "greatday_nomfa",
            "Password": "Everyday",
            "Save": True,
            "WithMFAQuestions": True,
        },
    )
    return answer["Login"]["Id"]


def endpoint_of(context):
    return context.operation.path.rsplit("/BankingServices/", 1)[-1].split("/", 1)[0]


def is_public(context):
    return "/BankingServices/" in context.operation.path


@schemathesis.hook
def before_call(context, case, kwargs):
    # Here rather than in the map_* hooks: those skip the coverage phase's cases.
    if not is_public(context):
        admin(context, case)
        return
    case.path_parameters = path_parameters(context, case.path_parameters)
    case.headers = headers(context, case.headers)
    case.body = body(context, case.body)


def path_parameters(context, path_parameters):
    path_parameters = dict(path_parameters or {})
    path_parameters["customerId"] = CUSTOMER
    # Most polls name a live session; some keep the generated RequestId (a 400).
    if "requestId" in path_parameters and rng.random() < 0.8:
        path_parameters["requestId"] = authorized_request_id()
    # GetMFAQuestions: most cases name a card that keeps its questions.
    if "loginId" in path_parameters and endpoint_of(context) == "GetMFAQuestions":
        if rng.random() < 0.8:
            path_parameters["loginId"] = enrolled_login_id()
    return path_parameters


def headers(context, headers):
    headers = dict(headers or {})
    endpoint = endpoint_of(context)
    if endpoint == "GenerateAuthorizeToken":
        headers["flinks-auth-key"] = SECRET_KEY
    elif endpoint in ("Authorize", "AuthorizeAsync"):
        headers["flinks-auth-key"] = fresh_token()
    else:
        headers["x-api-key"] = API_KEY
    return headers


def body(context, body):
    if not isinstance(body, (dict, type(None))):
        return body
    endpoint = endpoint_of(context)
    body = dict(body or {})
    if endpoint in ("Authorize", "AuthorizeAsync"):
        # Most cases log in to the sandbox bank; the generated fields around stay.
        if rng.random() < 0.8:
            for key in ("LoginId", "RequestId", "SecurityResponses"):
                body.pop(key, None)
            body.update(
                Institution="FlinksCapital",
                Username=rng.choice(USERS),
                Password="Everyday",
                MostRecentCached=False,
            )
        return body
    if endpoint in ("SetScheduledRefresh", "AnswerMFAQuestions") and rng.random() < 0.8:
        body["LoginId"] = enrolled_login_id()
        if endpoint == "AnswerMFAQuestions" and rng.random() < 0.5:
            body["Questions"] = [
                {"Question": "What city were you born in?", "Answer": "Montreal"}
            ]
        return body
    if endpoint in ("GetAccountsSummary", "GetAccountsDetail", "GetStatements"):
        if rng.random() < 0.8:
            body["RequestId"] = authorized_request_id()
    if endpoint.startswith("Get"):
        # Account ids are the session's own: a generated one is always unknown (a 400).
        body.pop("AccountsFilter", None)
        if body.get("NumberOfStatements") == "Months12":
            body["NumberOfStatements"] = "Months3"  # Months12 needs one account in the filter
        return body
    return body


def admin(context, case):
    """Most admin cases name what exists: the toolbox, its customer, one of its LoginIds."""
    if rng.random() >= 0.8:
        return
    path = context.operation.path
    if "{name}" in path:
        case.path_parameters = {**(case.path_parameters or {}), "name": "toolbox"}
    if "{customerId}" in path:
        customer = spare_customer() if path.endswith("/rotate-keys") else CUSTOMER
        case.path_parameters = {**(case.path_parameters or {}), "customerId": customer}
    if "{loginId}" in path:
        case.path_parameters = {**(case.path_parameters or {}), "loginId": admin_login_id()}
    if path == "/admin/customers" and context.operation.method.upper() == "GET":
        case.query = {**(case.query or {}), "instance": "toolbox"}
    if not isinstance(case.body, dict):
        return
    if path == "/admin/customers":
        case.body = {**case.body, "instance": "toolbox"}
    elif path.endswith("/logins"):
        case.body = {**case.body, "username": rng.choice(USERS)}
        case.body.pop("institution", None)
    elif path == "/admin/tokens/inspect":
        case.body = {**case.body, "token": fresh_token()}


@schemathesis.hook
def after_call(context, case, response):
    # A forced failure or fault a case set on the toolbox would make the hooks' own calls
    # (fresh_token) fail or stall: clear them at once.
    if case.operation.path.endswith(("/faults", "/failures")):
        admin_delete("/admin/instances/toolbox/faults")
        admin_delete(f"/admin/customers/{CUSTOMER}/failures")
    count = counts[f"{case.operation.method.upper()} {case.operation.path}"]
    if 200 <= response.status_code < 300:
        count["2xx"] += 1
        return
    count["other"] += 1
    try:
        reason = response.json().get("Reason") or response.json().get("reason")
    except Exception:  # not JSON, or not an object: counted under its status alone
        reason = None
    refusals[f"{case.operation.method.upper()} {case.operation.path}"][
        f"{response.status_code} {reason}"
    ] += 1


@atexit.register
def write_stats():
    if not STATS:
        return
    with open(STATS, "a", encoding="utf-8") as out:
        for operation, count in sorted(counts.items()):
            total = count["2xx"] + count["other"]
            common = ", ".join(
                f"{n} {what}" for what, n in refusals[operation].most_common(3)
            )
            out.write(f"{count['2xx']:5d} of {total:5d} cases 2xx  {operation}  (else: {common})\n")
