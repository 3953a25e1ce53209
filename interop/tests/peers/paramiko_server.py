#!/usr/bin/env python3
"""A paramiko SSH server Transport for minissh to talk to.

Usage: paramiko_server.py HOST_KEY AUTHORIZED_PUB

Listens on 127.0.0.1 on a free port and prints "PORT <n>". For every
connection it runs a server Transport with the ed25519 HOST_KEY, accepts
public key authentication only for the key in AUTHORIZED_PUB, and runs
`exec` requests by echoing the channel's input back and exiting 0. One line
per event goes to stdout for the test to check: "KEX <cipher> <mac>" when
the client first asks to authenticate (so it always comes before "AUTH"),
"AUTH <user> <result>", "EXEC <command> <n bytes>", and "ERROR ..." for a
connection that failed before its key exchange was done.
"""

import base64
import socket
import sys
import threading

import paramiko


_stdout_lock = threading.Lock()


def say(line):
    # print() writes the text and the newline separately, so two threads
    # printing at once can splice their lines together; one locked write
    # per line keeps every line whole.
    with _stdout_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Server(paramiko.ServerInterface):
    def __init__(self, authorized, transport):
        self.authorized = authorized
        self.transport = transport
        self.kex_reported = False

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if not self.kex_reported:
            self.kex_reported = True
            t = self.transport
            say(f"KEX {t.remote_cipher} {t.remote_mac}")
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
    server = Server(authorized, transport)
    try:
        transport.start_server(server=server)
    except Exception as e:  # noqa: BLE001 - reported, then the next client
        # start_server polls, and also raises when a quick client has already
        # authenticated, run its command and hung up: only a connection that
        # never got through its key exchange is an error.
        if not server.kex_reported:
            say(f"ERROR {type(e).__name__}: {e}")
        return
    while transport.is_active():
        transport.join(0.2)


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
