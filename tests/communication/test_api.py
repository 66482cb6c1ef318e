import httpx
from tests.conftest import TEST_WEBHOOK_SECRET
H = {"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET}

def test_probe(tars_server, redis_client, tasks):
    u = tars_server.url
    for body in [{"goal": "x", "project_path": "a\u0000b"}, {"goal": "x", "project_path": "~nosuchuserxyz/p"},
                 {"goal": "x", "project_path": "a" * 300}, {"goal": "x", "project_path": "."},
                 {"goal": "x", "project_path": "~"}, {"goal": "x" * 10001}, {"goal": "   "}, {}]:
        r = httpx.post(u + "/api/tasks", json=body, headers=H)
        print(repr(body)[:60], r.status_code, r.text[:200])
    for body in [b"", b"[]", b"{", b"null", b'{"task_id":"abcdef"}', b'{"code":"1"}', b'{"task_id":"abcdef","code":{}}', b'{"task_id":"../x","code":"1"}', b'{"task_id":"abcdef","code":"1"}']:
        r = httpx.post(u + "/webhook/background-confirmation", content=body, headers=H)
        print(body, r.status_code, r.text[:200])
    for p in ["..%2Fx", "abc%0A", "zzzz", "x:y", "%23ABCDEF", "a"*40]:
        r = httpx.get(u + "/api/tasks/" + p, headers=H)
        print(p, r.status_code, r.text[:200])
    print(httpx.get(u + "/health").text)
    print(redis_client.zcard("tars:tasks"), redis_client.keys("*"))
    print(httpx.get(u + "/openapi.json").json()["paths"].keys())
