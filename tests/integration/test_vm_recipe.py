"""The plain-VM recipe's nginx steps (docs/deployment.md), run as written against a copy
of this machine's stock Debian nginx configuration, default site included."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import unavailable

ROOT = Path(__file__).resolve().parents[2]
STOCK = Path("/etc/nginx")


def recipe_nginx_steps() -> str:
    """The lines of the VM recipe from its ``# nginx:`` comment to ``nginx -t``."""
    section = (ROOT / "docs" / "deployment.md").read_text().split("## Plain VM", 1)[1]
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        if "# nginx:" in block:
            steps = block.split("# nginx:", 1)[1].split("\n", 1)[1]
            return steps.split("&& sudo systemctl reload nginx", 1)[0]
    raise AssertionError("no nginx steps in the VM recipe")


@pytest.fixture
def stock_nginx(tmp_path) -> Path:
    """/etc/nginx copied under tmp_path, its absolute paths pointing at the copy."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not (STOCK / "sites-enabled").is_dir():
        unavailable("no stock Debian nginx here", ".ci/run installs nginx")
    if not shutil.which("envsubst") or not shutil.which("openssl"):
        unavailable("envsubst or openssl missing", "gettext-base and openssl")
    etc = tmp_path / "etc" / "nginx"
    shutil.copytree(STOCK, etc, symlinks=True)
    default = etc / "sites-enabled" / "default"
    if default.is_symlink():
        default.unlink()
        default.symlink_to(etc / "sites-available" / "default")
    assert "default_server" in default.read_text()
    conf = (etc / "nginx.conf").read_text().replace("/etc/nginx", str(etc))
    conf = conf.replace("/var/log/nginx", str(tmp_path)).replace(
        "/run/nginx.pid", str(tmp_path / "pid")
    )
    (etc / "nginx.conf").write_text(conf)
    return tmp_path


def test_the_recipe_passes_nginx_t_beside_debians_default_site(stock_nginx):
    tmp = stock_nginx
    certs = tmp / "certs"
    certs.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=auth.example.com",
            "-keyout",
            str(certs / "privkey.pem"),
            "-out",
            str(certs / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    steps = (
        recipe_nginx_steps()
        .replace("sudo ", "")
        .replace("/etc/nginx", str(tmp / "etc" / "nginx"))
        .replace("/etc/letsencrypt/live/auth.example.com", str(certs))
        .replace("/var/log/nginx", str(tmp))
    )
    steps = steps.replace("nginx -t", f"nginx -t -c {tmp / 'etc' / 'nginx' / 'nginx.conf'}")
    assert "envsubst" in steps and "nginx -t" in steps
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", steps], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "duplicate default server" not in result.stderr
    assert "test is successful" in result.stderr
