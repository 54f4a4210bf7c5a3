"""The one error table (coordination/errors.py): what the API and the review views answer to each refusal."""

from __future__ import annotations

import pytest

from coordination.access import display_name, human_agent_id
from coordination.errors import ERROR_TABLE, UNLISTED, answer_for
from empathy_os import EmpathyError, ReviewLock, ReviewLockedError
from empathy_os.exceptions import HTTP_ANSWERS
from patterns.views import refusal


@pytest.mark.parametrize("cls,status,code", ERROR_TABLE)
def test_each_row_answers_its_own_class(cls, status, code):
    assert answer_for(cls("refused")) == (status, code)


def test_the_most_specific_row_answers():
    from empathy_os import StagingFullError, ValueTooLargeError

    assert answer_for(StagingFullError("full")) == (409, "staging_full")  # not "conflict"
    assert answer_for(ValueTooLargeError("big")) == (413, "too_large")  # not "invalid_input"
    assert answer_for(ReviewLockedError(ReviewLock("p1", "human-vera", 0.0))) == (409, "conflict")
    assert answer_for(EmpathyError("odd")) == UNLISTED


def test_the_review_views_name_people_by_display_name(django_user_model, db):
    user = django_user_model(username="vera")
    assert display_name(human_agent_id(user)) == "vera" and display_name("security_agent") == "security_agent"
    status, message = refusal(ReviewLockedError(ReviewLock("p1", human_agent_id(user), 0.0)))
    assert (status, message) == (409, "p1 is being reviewed by vera; wait for them to finish")


@pytest.mark.parametrize("cls,status,code", HTTP_ANSWERS)
def test_the_http_client_reads_each_answer_back_as_its_exception(cls, status, code):
    import httpx

    from empathy_os.client._http import raise_for

    with pytest.raises(cls, match="^refused$") as raised:
        raise_for(httpx.Response(status, json={"error": code, "detail": "refused"}))
    assert type(raised.value) is cls


def test_the_http_client_reads_an_unlisted_code_by_its_status():
    import httpx

    from empathy_os import ConflictError, MemoryUnavailableError
    from empathy_os.client._http import TokenRejectedError, raise_for

    for status, exc in ((409, ConflictError), (503, MemoryUnavailableError), (401, TokenRejectedError)):
        with pytest.raises(exc) as raised:
            raise_for(httpx.Response(status, json={"error": "something_new", "detail": "no"}))
        assert type(raised.value) is exc
