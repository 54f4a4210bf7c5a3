"""Key building and id validation (property-based)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from empathy_os import AccessTier, AgentCredentials, Config, InvalidInputError
from empathy_os.keys import ID_PATTERN, TeamKeys, validate_id

valid_ids = st.from_regex(ID_PATTERN, fullmatch=True)


@given(valid_ids, valid_ids, valid_ids)
def test_it_puts_every_team_key_in_the_teams_slot(team, agent, task_id):
    keys = TeamKeys("empathy", team)
    built = [keys.events, keys.agents, keys.pending, keys.memory(agent, task_id), keys.task(task_id),
             keys.pending_of(task_id), keys.inbox(agent), keys.session(task_id), keys.state(agent, task_id)]
    for key in built:
        assert re.findall(r"\{([^}]*)\}", key)[0] == f"team:{team}"  # the first {...} is the hash tag


@given(valid_ids, valid_ids, valid_ids, valid_ids)
def test_it_never_lets_two_owners_share_a_memory_key(agent_a, key_a, agent_b, key_b):
    keys = TeamKeys("empathy", "t")
    same_key = keys.memory(agent_a, key_a) == keys.memory(agent_b, key_b)
    assert same_key == ((agent_a, key_a) == (agent_b, key_b))


@given(st.text(max_size=200))
def test_it_accepts_exactly_the_documented_ids(text):
    ok = bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", text))
    if ok:
        assert validate_id(text) == text
    else:
        with pytest.raises(InvalidInputError):
            validate_id(text)


@pytest.mark.parametrize("value", ["a:b", "a*", "{a}", "a b", "ünïcode", "", "a" * 129, None, 3])
def test_it_refuses_ids_that_could_break_keys(value):
    with pytest.raises(InvalidInputError):
        validate_id(value, "agent id")


def test_it_parses_tiers_by_name_or_number():
    assert AgentCredentials("a", "validator").tier is AccessTier.VALIDATOR
    assert AgentCredentials("a", 4).tier is AccessTier.STEWARD
    with pytest.raises(InvalidInputError, match="observer, contributor, validator, steward"):
        AgentCredentials("a", "admin")


def test_it_reads_limits_from_the_environment():
    config = Config.from_env({"EMPATHY_MAX_VALUE_BYTES": "2048", "EMPATHY_KEY_PREFIX": "other"})
    assert (config.max_value_bytes, config.key_prefix) == (2048, "other")
    with pytest.raises(ValueError, match="EMPATHY_TASK_LEASE_SECONDS"):
        Config.from_env({"EMPATHY_TASK_LEASE_SECONDS": "soon"})
    with pytest.raises(ValueError, match="positive"):
        Config.from_env({"EMPATHY_SESSION_TTL": "-5"})
    with pytest.raises(ValueError, match="key_prefix"):
        Config(key_prefix="bad:prefix")


def test_it_spreads_the_team_index_over_the_slot_ranges():
    from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

    from empathy_os.keys import TEAM_INDEX_SHARDS, team_index_keys, team_index_shard

    keys = team_index_keys("empathy")
    width = REDIS_CLUSTER_HASH_SLOTS // TEAM_INDEX_SHARDS
    assert [key_slot(k.encode()) // width for k in keys] == list(range(TEAM_INDEX_SHARDS))  # shard i in range i
    team = TeamKeys("empathy", "review_team")
    assert key_slot(team.events.encode()) // width == team_index_shard("review_team")  # the team's own range


def test_it_lists_a_team_on_another_master_when_its_own_holds_no_shard():
    from empathy_os import team_index
    from empathy_os.keys import team_index_keys

    class Node:
        def __init__(self, name):
            self.name = name

    class Client:  # "a" serves the team's data but no shard; "b" and "c" serve the shards
        def get_node_from_key(self, key):
            if "{team:" in key:
                return Node("a")
            return Node("b" if team_index_keys("empathy").index(key) % 2 else "c")

    class Memory:
        mode, client, config = "cluster", Client(), Config()

        def team(self, team_id):
            return TeamKeys("empathy", team_id)

    candidates = team_index._candidates(Memory(), "t1")
    assert len(candidates) == 2 and {Client().get_node_from_key(k).name for k in candidates} == {"b", "c"}
