"""The Engine contract: what every engine has, the optional features' defaults the supervisor relies on,
the factory, the one Hop and the one retry limit."""

from __future__ import annotations

from typing import Any

from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import MAX_TRIES
from wa_onboard.core.tunnel import sshcmd, sshfiles
from wa_onboard.core.tunnel.engines import Engine, Failure, hops, make_engine

PROFILE = Profile(user="bbadger", jump="best-tux.cae.wisc.edu", host="carproject-06.engr.wisc.edu:2222")


class _Early:
    """A stand-in for the jump master started at launch."""

    discarded = False

    def discard(self) -> None:
        self.discarded = True


def test_an_engine_without_the_optional_features_says_so() -> None:
    engine = Engine()
    assert engine.ping(1.0) is None  # cannot tell: the supervisor reads it as not alive
    assert engine.pids() == set()
    early: Any = _Early()
    assert engine.adopt(early) is False and not early.discarded  # the caller stops it
    assert engine.adopted_early is False


def test_the_factory_picks_the_profiles_engine_and_both_keep_the_contract() -> None:
    openssh = make_engine(PROFILE, "default")
    paramiko = make_engine(PROFILE.updated(engine="paramiko"), "default")
    assert isinstance(openssh, Engine) and openssh.name == "openssh"
    assert isinstance(paramiko, Engine) and paramiko.name == "paramiko"
    early: Any = _Early()
    assert openssh.adopt(early) is True  # kept for its login, which uses or stops it
    assert paramiko.adopt(early) is False  # no control master to take over


def test_one_hop_for_both_engines() -> None:
    jump, ws = hops(PROFILE, "work")
    assert (jump.role, jump.alias, jump.who, jump.port) == (
        "jump",
        "wa-work-jump",
        "bbadger@best-tux.cae.wisc.edu",
        22,
    )
    assert (ws.alias, ws.host, ws.port) == ("wa-work-ws", "carproject-06.engr.wisc.edu", 2222)
    assert (jump.noun, jump.auth_failure) == ("jump host", Failure.JUMP_AUTH)
    assert (ws.noun, ws.auth_failure) == ("workstation", Failure.WS_AUTH)
    assert (jump.alias, ws.alias) == sshcmd.alias_names("work")
    assert make_engine(PROFILE, "work").ws_hop == ws  # type: ignore[attr-defined]
    assert make_engine(PROFILE.updated(engine="paramiko"), "work").ws_hop == ws  # type: ignore[attr-defined]


def test_ssh_itself_asks_no_more_often_than_the_retry_limit() -> None:
    assert MAX_TRIES == 3
    assert sshfiles.render_profile(PROFILE).count(f"    NumberOfPasswordPrompts {MAX_TRIES}\n") == 2
