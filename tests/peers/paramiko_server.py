#!/usr/bin/env python3
"""A paramiko SSH server Transport for minissh to talk to.

Usage: paramiko_server.py HOST_KEY AUTHORIZED_PUB

Listens on 127.0.0.1 on a free port and prints "PORT <n>". For every
connection it runs a server Transport with the ed25519 HOST_KEY, accepts
public key authentication only for the key in AUTHORIZED_PUB, and runs
`exec` requests by echoing the channel's input back and exiting 0. One line
per event goes to stdout ("KEX <cipher>", "AUTH <user> <result>",
"EXEC <command> <n bytes>") for the test to check.
"""

import base64
import socket
import sys
import threading

import paramiko


def say(line):
    print(line, flush=True)


class Server(paramiko.ServerInterface):
    def __init__(self, authorized):
        self.authorized = authorized

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        ok = key.get_base64() == self.authorized.get_base64()
        say(f"AUTH {username} {'ok' if ok else 'refused'}")
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        threading.Thread(target=echo, args=(channel, command), daemon=True).start()
        return True


def echo(channel, command):
    total = 0
    while True:
        data = channel.recv(65536)
        if not data:
            break
        total += len(data)
        channel.sendall(data)
    say(f"EXEC {command.decode()} {total}")
    channel.send_exit_status(0)
    channel.shutdown_write()
    channel.close()


def serve(conn, host_key, authorized):
    transport = paramiko.Transport(conn)
    transport.add_server_key(host_key)
    try:
        transport.start_server(server=Server(authorized))
        say(f"KEX {transport.remote_cipher} {transport.remote_mac}")
        while transport.is_active():
            transport.join(0.2)
    except Exception as e:  # noqa: BLE001 - reported, then the next client
        say(f"ERROR {type(e).__name__}: {e}")


def main():
    host_key = paramiko.Ed25519Key.from_private_key_file(sys.argv[1])
    with open(sys.argv[2]) as f:
        kind, blob = f.read().split()[:2]
    authorized = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    say(f"PORT {listener.getsockname()[1]}")
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, host_key, authorized), daemon=True).start()


if __name__ == "__main__":
    main()
