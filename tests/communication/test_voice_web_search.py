"""More than code on a call: with VOICE_WEB_SEARCH=on the voice brain may search the web (Anthropic's server-side
web search) to answer about the weather, the news or documentation. End to end, as in test_voice.py: the real app
under uvicorn, a ConversationRelay socket, the real streaming brain against the fake Anthropic API (and the fake
OpenAI-compatible one for a fallback)."""

from __future__ import annotations

import json

from communication.conversation import WEB_SEARCH_TOOL
from communication.spoken import FILLER
from sub_agents_tars import LOOKING_UP, VOICE_TOOLS
from tests.communication.test_voice import make_server, phone, voice  # noqa: F401 - the fixtures
from tests.fakes import openai_api as oai
from tests.fakes.anthropic_api import error, repeat, text, web_search

ATLANTA = [("Atlanta, GA weather forecast", "https://weather.example/atlanta"),
           ("Hourly weather for Atlanta", "https://forecast.example/atl")]


def searching(make_server, **more):
    return make_server(VOICE_WEB_SEARCH="on", **more)


def test_the_weather_is_searched_and_the_answer_alone_is_heard(make_server, phone, fake_api):
    """The request offers the web search (a few searches at most); the caller hears the answer's words, never its
    citations; the next request sends the search's blocks back as the API sent them."""
    search = web_search("weather Atlanta today", "It's 75 and sunny in Atlanta, sir, with rain by evening.",
                        ATLANTA, before="Let me check.")
    fake_api.script([search, text("Take an umbrella tonight, sir.")], match="weather in Atlanta")
    call = phone(server=searching(make_server))
    call.say("what's the weather in Atlanta?")
    reply = call.reply()
    assert reply.text == "Let me check. It's 75 and sunny in Atlanta, sir, with rain by evening."
    assert "http" not in reply.text and "example" not in reply.text
    first = fake_api.message_requests[0].body
    assert first["tools"] == VOICE_TOOLS + [WEB_SEARCH_TOOL]
    assert WEB_SEARCH_TOOL == {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    assert LOOKING_UP[True] in first["system"] and LOOKING_UP[False] not in first["system"]

    call.say("should I take an umbrella")
    assert call.reply().text == "Take an umbrella tonight, sir."
    second = fake_api.message_requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    sent = second[1]["content"]
    assert [b["type"] for b in sent] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    use, result = sent[1], sent[2]
    assert use["id"].startswith("srvtoolu_01")
    assert use == {"type": "server_tool_use", "id": use["id"], "name": "web_search",
                   "input": {"query": "weather Atlanta today"}}
    served = search.content[2]["content"]  # what the API answered, encrypted contents and all
    assert result == {"type": "web_search_tool_result", "tool_use_id": use["id"],
                      "content": [{k: v for k, v in r.items() if v is not None} for r in served]}
    assert sent[3] == {"type": "text", "text": "It's 75 and sunny in Atlanta, sir, with rain by evening."}


def test_a_slow_search_makes_the_caller_hear_the_filler(make_server, phone, fake_api):
    fake_api.script([web_search("python 3.14 release notes", "Python 3.14 came out in October, sir.",
                                before="One sec.", search_delay=2.0)], match="python")
    call = phone(server=searching(make_server))
    call.say("when did python 3.14 come out")
    reply = call.reply()
    assert reply.tokens[:2] == ["One sec.", " " + FILLER]  # said while the search ran, before the answer
    assert reply.text == f"One sec. {FILLER}Python 3.14 came out in October, sir."


def test_a_fast_search_is_not_announced(make_server, phone, fake_api):
    fake_api.script([web_search("news today", "The markets rose today, sir.")], match="news")
    call = phone(server=searching(make_server))
    call.say("what's in the news")
    assert call.reply().text == "The markets rose today, sir."


def test_a_search_the_api_paused_goes_on_in_the_same_answer(make_server, phone, fake_api):
    """stop_reason pause_turn: the paused answer is sent back as it stands, the API goes on with it, and the call's
    history holds one assistant message for the turn."""
    fake_api.script([web_search("weather Atlanta", stop_reason="pause_turn", before="Checking."),
                     text("It's 75 in Atlanta, sir."), text("You're welcome, sir.")], match="Atlanta")
    call = phone(server=searching(make_server))
    call.say("weather in Atlanta please")
    assert call.reply().text == "Checking. It's 75 in Atlanta, sir."
    going_on = fake_api.message_requests[1].body["messages"]
    assert [m["role"] for m in going_on] == ["user", "assistant"]  # the paused answer, to be continued
    assert [b["type"] for b in going_on[1]["content"]] == ["text", "server_tool_use", "web_search_tool_result"]
    call.say("thanks")
    call.reply()
    after = fake_api.message_requests[2].body["messages"]
    assert [m["role"] for m in after] == ["user", "assistant", "user"]
    assert [b.get("text") for b in after[1]["content"] if b["type"] == "text"] == ["Checking.",
                                                                                    "It's 75 in Atlanta, sir."]


def test_with_web_search_off_the_tool_is_not_offered_and_the_brain_cannot_look_things_up(phone, fake_api):
    fake_api.script([text("I can't look that up, sir, but Atlanta is usually warm.")], match="weather")
    call = phone()
    call.say("what's the weather in Atlanta?")
    call.reply()
    first = fake_api.message_requests[0].body
    assert first["tools"] == VOICE_TOOLS
    assert "you cannot look things up" in first["system"] and "search the web" not in first["system"]


def test_a_fallback_after_a_search_sends_the_openai_model_no_search(make_server, phone, fake_api, fake_openai):
    """Claude searched on the first turn, then is overloaded: the OpenAI-compatible model answers the next turn
    without the tool and without the search's blocks, with the words the caller heard."""
    fake_api.script([web_search("weather Atlanta", "It's 75 and sunny, sir.", ATLANTA), repeat(error(529))],
                    match="Atlanta")
    fake_openai.script([oai.text("About 60 tonight, sir.")], match="Atlanta")
    server = searching(make_server, VOICE_MODELS="anthropic:claude-haiku-5-5,openai:gpt-5.1-mini",
                       OPENAI_BASE_URL=fake_openai.base_url, OPENAI_API_KEY="sk-test-openai")
    call = phone(server=server)
    call.say("what's the weather in Atlanta?")
    assert call.reply().text == "It's 75 and sunny, sir."
    call.say("and tonight?")
    assert call.reply(timeout=30).text == "About 60 tonight, sir."
    body = fake_openai.requests[0].body
    assert [t["function"]["name"] for t in body["tools"]] == [t["name"] for t in VOICE_TOOLS]
    assert [(m["role"], m["content"]) for m in body["messages"][1:]] == [
        ("user", "what's the weather in Atlanta?"), ("assistant", "It's 75 and sunny, sir."),
        ("user", "and tonight?")]
    assert "srvtoolu" not in json.dumps(body) and "web_search" not in json.dumps(body)
