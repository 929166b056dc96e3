"""Generated local secrets: processes racing to create them all read one complete set, written with mode 0600."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from shared.core.settings import PROJECT_ROOT

READ_ALL = """
import json, sys
from shared.core.settings import Settings
from shared.core.credentials import load_credentials
from shared.core.tls import client_tls, server_credentials
settings = Settings(home=sys.argv[1])
server_credentials(settings)
found = client_tls(settings)
print(json.dumps({"ca": found.root_ca.decode(), "cert": found.cert.decode(),
                  "tokens": load_credentials(settings).client_tokens}))
"""


def test_racing_processes_generate_one_set_of_secrets(tmp_path):
    home = tmp_path / "home"
    racers = [
        subprocess.Popen([sys.executable, "-c", READ_ALL, str(home)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    seen = [json.loads(p.communicate(timeout=120)[0]) for p in racers]
    assert all(p.returncode == 0 for p in racers)
    assert all(s == seen[0] for s in seen), "racing processes read different secrets"
    assert set(seen[0]["tokens"]) == {"local", "chat"}
    secrets = home / "secrets"
    files = [f for f in secrets.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"ca.crt", "server.key", "client.key", "identity_secret", "local", "chat"}
    assert not [f for f in secrets.rglob(".*")], "scratch files left behind"
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((secrets / "tls").stat().st_mode) == 0o700


def test_the_generated_server_certificate_names_this_machine(tmp_path):
    from cryptography import x509

    from shared.core.settings import Settings
    from shared.core.tls import generated_folder, server_credentials

    settings = Settings(home=tmp_path)
    server_credentials(settings)
    cert = x509.load_pem_x509_certificate((generated_folder(settings) / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
    assert Path(generated_folder(settings) / "ca.key").exists() is False  # nothing more can be signed
