"""The channel factory's targets (pure logic; tests/services/test_ads_replicas.py balances real replicas): a plain
host:port goes through the DNS resolver so every replica's record is used, targets with a scheme are kept, and the
host TLS checks is the one the target names (the first of an address list)."""

from __future__ import annotations

import json

import pytest

from shared.core.channels import balancing_options, grpc_target, target_host
from shared.core.settings import Settings


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("ads:50051", "dns:///ads:50051"),
        ("127.0.0.1:50051", "dns:///127.0.0.1:50051"),
        ("[::1]:50051", "dns:///[::1]:50051"),
        (" dns:///ads:50051 ", "dns:///ads:50051"),
        ("dns://10.0.0.2:53/ads:50051", "dns://10.0.0.2:53/ads:50051"),
        ("ipv4:127.0.0.1:1,127.0.0.2:2", "ipv4:127.0.0.1:1,127.0.0.2:2"),
        ("unix:/tmp/ads.sock", "unix:/tmp/ads.sock"),
    ],
)
def test_plain_addresses_go_through_dns_and_schemes_are_kept(address, target):
    assert grpc_target(address) == target


def test_an_empty_address_names_the_field():
    with pytest.raises(ValueError, match="^address: empty"):
        grpc_target("  ")


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("dns:///ads:50051", "ads"),
        ("dns://10.0.0.2:53/ads.internal:50051", "ads.internal"),
        ("dns:///[::1]:50051", "::1"),
        ("dns:///0.0.0.0:50051", "0.0.0.0"),
        ("ipv4:127.0.0.2:1,127.0.0.3:2", "127.0.0.2"),
        ("ipv6:[::1]:1,[::1]:2", "::1"),
        ("unix:/tmp/ads.sock", "localhost"),
    ],
)
def test_the_host_tls_checks_is_the_one_the_target_names(target, host):
    assert target_host(target) == host


@pytest.mark.parametrize("policy", ["round_robin", "pick_first"])
def test_the_policy_setting_becomes_the_channel_service_config(policy):
    options = dict(balancing_options(Settings(grpc_lb_policy=policy)))
    assert json.loads(str(options["grpc.service_config"])) == {"loadBalancingConfig": [{policy: {}}]}
    assert options["grpc.service_config_disable_resolution"] == 1


def test_an_unknown_policy_is_refused_naming_the_setting(monkeypatch):
    monkeypatch.setenv("ECOMAI_GRPC_LB_POLICY", "random")
    with pytest.raises(ValueError, match="grpc_lb_policy"):
        Settings()
