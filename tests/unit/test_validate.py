from __future__ import annotations

import pytest

from wa_onboard.core import validate
from wa_onboard.core.errors import InvalidInput

HOSTILE = [
    "a;b",
    "$(id)",
    "`id`",
    "a'b",
    'a"b',
    "a\nb",
    "a b",
    "-leading",
    "base",
    "root",
    "",
    ".",
    "..",
    "x" * 65,
    "a/b",
    "a:b",
    "a#b",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_env_names_that_could_reach_a_shell_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate.env_name(value)
    assert info.value.field == "env"


@pytest.mark.parametrize("value", ["wa", "WA-2", "my_env.1", "x" * 64])
def test_plain_env_names_pass(value: str) -> None:
    assert validate.env_name(value) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("best-tux.cae.wisc.edu", ("best-tux.cae.wisc.edu", 22)),
        ("Best-Tux.cae.wisc.edu.", ("best-tux.cae.wisc.edu", 22)),
        ("jump.example:2222", ("jump.example", 2222)),
        ("192.0.2.1:22", ("192.0.2.1", 22)),
        ("[2001:db8::1]:2200", ("2001:db8::1", 2200)),
        ("2001:db8::1", ("2001:db8::1", 22)),
    ],
)
def test_host_port_parses(text: str, expected: tuple[str, int]) -> None:
    assert validate.host_port(text, "jump") == expected


@pytest.mark.parametrize(
    "text", ["-oProxyCommand=x", "a b", "host:0", "host:65536", "host:x", "a..b", "", "a_b.c"]
)
def test_bad_hosts_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        validate.host_port(text, "host")


def test_format_host_port_round_trips() -> None:
    assert validate.format_host_port("h.example", 22) == "h.example"
    assert validate.format_host_port("h.example", 2222) == "h.example:2222"
    assert validate.format_host_port("2001:db8::1", 2200) == "[2001:db8::1]:2200"


@pytest.mark.parametrize(
    "value", ["0", "65536", "-1", "x", "8.5", " 8000", "8_000", "\u0668\u0660\u0660\u0660", "+80", "080000"]
)
def test_ports_outside_range_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="port number"):
        validate.port(value, "local-port")


@pytest.mark.parametrize("value", ["bbadger", "b_badger2", "_svc", "a.b-c"])
def test_user_names(value: str) -> None:
    assert validate.user(value) == value


@pytest.mark.parametrize("value", ["-x", "a b", "a;b", "1abc", "x" * 33, "a@b"])
def test_bad_user_names(value: str) -> None:
    with pytest.raises(InvalidInput):
        validate.user(value)


def test_kernel_names_follow_jupyter() -> None:
    assert validate.kernel_name("WA") == "WA"
    for bad in ["a b", "wa/x", "-wa", "wa;", ""]:
        with pytest.raises(InvalidInput):
            validate.kernel_name(bad)


def test_display_name_refuses_control_characters() -> None:
    assert validate.display_name("WA (robotics)") == "WA (robotics)"
    for bad in ["", "   ", "a\nb", "a\x1b[31m", "x" * 129]:
        with pytest.raises(InvalidInput):
            validate.display_name(bad)


@pytest.mark.parametrize(
    ("value", "expected"), [("/jupyter/", "/jupyter"), ("jupyter", "/jupyter"), ("/", "")]
)
def test_base_url_is_normalised(value: str, expected: str) -> None:
    assert validate.base_url(value) == expected


def test_base_url_refuses_queries_and_spaces() -> None:
    for bad in ["/a b", "/a?x=1", "/a/../b/%2f"]:
        with pytest.raises(InvalidInput):
            validate.base_url(bad)


def test_module_and_python_rules() -> None:
    assert validate.conda_module("anaconda3/2024.02") == "anaconda3/2024.02"
    assert validate.python_version("3.12") == "3.12"
    for bad in ["../x", "-m", "a b"]:
        with pytest.raises(InvalidInput):
            validate.conda_module(bad)
    for bad in ["2.7", "3", "3.11;x"]:
        with pytest.raises(InvalidInput):
            validate.python_version(bad)


@pytest.mark.parametrize(
    "text",
    [
        "fe80::1%eth0",
        "[fe80::1%eth0]:2222",
        "[fe80::1%h\n ProxyCommand sh -c 'touch ~/PWNED'\n #]",
        "fe80::1%a b#c",
        "fe80::1%",
    ],
)
def test_ipv6_zone_ids_are_refused(text: str) -> None:
    """ipaddress accepts anything after '%' (newlines, spaces, '#'): it must never reach our ssh_config."""
    with pytest.raises(InvalidInput, match="zone id") as info:
        validate.host_port(text, "jump")
    assert "\n" not in str(info.value)


def test_a_long_bad_value_is_cut_in_the_error() -> None:
    value = "a b" * 2000
    for check in (validate.user, validate.env_name, lambda v: validate.host_port(v, "host")):
        with pytest.raises(InvalidInput) as info:
            check(value)
        message = str(info.value)
        assert len(message) < 200, message
        assert "…" in message and "6000 characters" in message
    with pytest.raises(InvalidInput) as info:
        validate.user("a b")
    assert "'a b'" in str(info.value) and "…" not in str(info.value)  # short values are shown whole


@pytest.mark.parametrize("text", ["0", "127.1", "1.2.3", "010.1.1.1", "0x7f.1", "1.2.3.4.5", "2130706433"])
def test_names_that_ssh_reads_as_a_shortened_ipv4_address_are_refused(text: str) -> None:
    """Found by the property test: ssh -G turns HostName "0" into 0.0.0.0 and "127.1" into 127.0.0.1."""
    with pytest.raises(InvalidInput, match="IPv4"):
        validate.host_port(text, "host")


@pytest.mark.parametrize("text", ["1password.com", "0x7f.example", "ws-06.wisc.edu", "10.0.0.1"])
def test_names_with_digits_that_are_names(text: str) -> None:
    assert validate.host_port(text, "host")[0] == text


@pytest.mark.parametrize("text", ["::ffff:0:0", "::ffff:192.0.2.1", "[::192.0.2.1]:22", "::2:3"])
def test_ipv4_addresses_written_as_ipv6_are_refused(text: str) -> None:
    """Found by the property test: ssh -G shows HostName ::ffff:0:0 as ::ffff:0.0.0.0 (known_hosts names
    would differ between the engines)."""
    with pytest.raises(InvalidInput, match="IPv4 address written as IPv6"):
        validate.host_port(text, "host")
    assert validate.host_port("::1", "host") == ("::1", 22)
    assert validate.host_port("::", "host") == ("::", 22)


@pytest.mark.parametrize("value", ["/..", "/a/../../b", "/./jupyter", "/jupyter/.."])
def test_a_base_url_with_dot_segments_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        validate.base_url(value)
