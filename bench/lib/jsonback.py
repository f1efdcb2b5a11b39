#!/usr/bin/python3
"""jsonback.py: the origin of bench/compression.sh (see docs/benchmarks.md, "Response compression").

An asyncio HTTP/1.1 keep-alive server. GET /json answers a JSON array of user objects of about --size bytes
(64 KiB), made by make_body() from a fixed seed, so every run and every reader gets the same bytes, with
`Content-Type: application/json; charset=utf-8`, a Content-Length and a weak ETag, as an Express app sends
it (with its `compression` middleware off). GET /small answers a short text body (readiness checks). Prints
`ready PORT`; stops on SIGTERM. Loopback only.
"""
import argparse
import asyncio
import json
import random
import signal

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Ken", "Dennis", "Margaret", "Linus", "Radia",
         "Leslie", "Frances", "John", "Niklaus", "Tony", "Shafi", "Whitfield", "Sophie", "Yukihiro", "Guido",
         "Anders", "Bjarne", "James", "Rasmus", "Brendan", "Mary", "Katherine", "Hedy", "Adele"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Thompson", "Ritchie", "Hamilton",
        "Torvalds", "Perlman", "Lamport", "Allen", "McCarthy", "Wirth", "Hoare", "Goldwasser", "Diffie", "Wilson",
        "Matsumoto", "Rossum", "Hejlsberg", "Stroustrup", "Gosling", "Lerdorf", "Eich", "Kenyon", "Johnson"]
CITIES = [("Berlin", "DE"), ("Lyon", "FR"), ("Porto", "PT"), ("Austin", "US"), ("Osaka", "JP"), ("Leeds", "GB"),
          ("Turin", "IT"), ("Ghent", "BE"), ("Quebec", "CA"), ("Cork", "IE"), ("Graz", "AT"), ("Brno", "CZ")]
STREETS = ["Main St", "Oak Ave", "Mill Lane", "Station Rd", "High St", "Park Blvd", "Church St", "River Rd"]
ROLES = ["admin", "editor", "viewer", "billing", "support", "owner"]
TAGS = ["beta", "newsletter", "mobile", "desktop", "trial", "enterprise", "churn-risk", "vip", "api", "sso"]
PLANS = ["free", "pro", "team", "enterprise"]


def make_body(size=65536, seed=11):
    """A JSON array of user objects (ids, names, e-mails, addresses, dates, roles, tags, a hex id, a balance),
    the kind a Node API returns, cut at the last whole object that fits in <size> bytes. Deterministic."""
    rnd = random.Random(seed)
    users, length = [], 2
    uid = 1000
    while True:
        uid += rnd.randint(1, 7)
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        city, country = rnd.choice(CITIES)
        created = "20%02d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
            rnd.randint(15, 25), rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59),
            rnd.randint(0, 59), rnd.randint(0, 999))
        user = {
            "id": uid,
            "uuid": "%08x-%04x-4%03x-%04x-%012x" % (rnd.getrandbits(32), rnd.getrandbits(16), rnd.getrandbits(12),
                                                    0x8000 | rnd.getrandbits(14), rnd.getrandbits(48)),
            "name": "%s %s" % (first, last),
            "email": "%s.%s%d@example.%s" % (first.lower(), last.lower(), rnd.randint(1, 99),
                                             rnd.choice(["com", "org", "net", "io"])),
            "age": rnd.randint(18, 80),
            "active": rnd.random() < 0.8,
            "plan": rnd.choice(PLANS),
            "balance": round(rnd.uniform(0, 5000), 2),
            "roles": rnd.sample(ROLES, rnd.randint(1, 3)),
            "tags": rnd.sample(TAGS, rnd.randint(0, 4)),
            "address": {"street": "%d %s" % (rnd.randint(1, 999), rnd.choice(STREETS)), "city": city,
                        "zip": "%05d" % rnd.randint(1000, 99999), "country": country},
            "createdAt": created,
            "lastLogin": None if rnd.random() < 0.1 else "2026-%02d-%02dT%02d:%02d:00Z" % (
                rnd.randint(1, 11), rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59)),
            "avatar": "https://cdn.example.com/avatars/%d.png" % uid,
        }
        text = json.dumps(user, separators=(",", ":"))
        if length + len(text) + 1 > size:
            break
        users.append(text)
        length += len(text) + 1
    return ("[" + ",".join(users) + "]").encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    body = make_body(args.size, args.seed)
    responses = {
        b"/json": ("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n"
                   "ETag: W/\"%x-bench\"\r\n\r\n" % (len(body), len(body))).encode() + body,
        b"/small": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nhello from jsonback\n",
    }
    not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    class Origin(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""

        def data_received(self, data):
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > 65536:
                        self.t.close()
                    return
                head, self.buf = self.buf[:end], self.buf[end + 4:]
                parts = head.split(b"\r\n", 1)[0].split(b" ")
                path = parts[1] if len(parts) > 1 else b"/"
                self.t.write(responses.get(path, not_found))
                if b"\r\nconnection: close" in head.lower():
                    self.t.close()
                    return

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Origin, "127.0.0.1", args.port, backlog=1024)
        print("ready %d" % server.sockets[0].getsockname()[1], flush=True)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
        await stop
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
