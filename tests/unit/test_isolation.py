"""The test suite keeps off the machine's own Redis (port 6379), whatever runs there."""

import os

from channels.layers import get_channel_layer
from channels.layers import InMemoryChannelLayer


def test_the_site_under_test_runs_in_mock_mode(settings):
    assert settings.EMPATHY_REDIS_URL is None
    assert settings.EMPATHY_CHANNELS_URL is None
    assert isinstance(get_channel_layer(), InMemoryChannelLayer)


def test_processes_started_by_the_tests_run_the_real_settings():
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "empathy_site.settings"
