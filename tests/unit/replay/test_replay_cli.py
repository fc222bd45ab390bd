"""``alertprod replay --image-cache-days N``: parsed, checked, and handed to the replay."""

from __future__ import annotations

import pytest

from alertprod.cli import build_parser
from alertprod.errors import ConfigError
from alertprod.replay.runner import replay

pytestmark = pytest.mark.unit


def test_image_cache_days_is_parsed_as_whole_days():
    args = build_parser().parse_args(["replay", "survey", "--export", "out", "--image-cache-days", "3"])
    assert args.image_cache_days == 3
    default = build_parser().parse_args(["replay", "survey", "--export", "out"])
    assert default.image_cache_days is None  # the template's ImageCacheDays (30)


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "week"])
def test_image_cache_days_below_one_day_or_fractional_is_refused(value, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["replay", "s", "--export", "o", "--image-cache-days", value])
    assert exc.value.code == 2
    assert "--image-cache-days" in capsys.readouterr().err


def test_replay_refuses_a_cache_shorter_than_a_day_before_starting(tmp_path):
    with pytest.raises(ConfigError, match="image_cache_days"):
        replay(tmp_path, tmp_path / "out", image_cache_days=0)
