"""Filing from the desk suggests likely duplicates (issue 7, "on filing, likely duplicates are
suggested"): in the filing response, and through the pre-file check the form calls as the
agent types. The suggestion never blocks filing."""

from tests.lifecycle.test_api import bearer, client, org  # noqa: F401  (fixtures)


def desk_body(title, description, phone, location):
    return {"case": {"type": "complaint", "title": title, "description": description,
                     "category_code": "C-CITY-ROAD", "citizen_phone": phone,
                     "location_text": location, "channel": "phone"},
            "resolution": "dispatch"}


def test_filing_response_lists_likely_duplicates_and_merge_works(client):  # noqa: F811
    agent = bearer(client, "agent01")
    first = client.post("/api/desk/cases", headers=agent, json=desk_body(
        "文昌路井盖丢失", "文昌路12号门口井盖丢失，晚上很危险", "13800138000", "文昌路12号"))
    assert first.status_code == 201, first.text
    assert first.json()["possible_duplicates"] == []
    first_no = first.json()["case"]["number"]

    # Another caller, same place, similar words: suggested as nearby + similar.
    second = client.post("/api/desk/cases", headers=agent, json=desk_body(
        "井盖丢失", "文昌路12号井盖丢失了，晚上走路很危险", "13900139000", "文昌路12号"))
    assert second.status_code == 201, second.text
    dups = second.json()["possible_duplicates"]
    assert [d["number"] for d in dups] == [first_no]
    assert set(dups[0]["reasons"]) == {"nearby", "similar_text"}
    second_no = second.json()["case"]["number"]

    # Unrelated report elsewhere by someone else: nothing suggested.
    third = client.post("/api/desk/cases", headers=agent, json=desk_body(
        "噪音扰民", "楼下饭店油烟和噪音扰民", "13700137000", "人民路88号"))
    assert third.json()["possible_duplicates"] == []

    # The pre-file check (what the form calls while the agent types) agrees.
    r = client.post("/api/duplicates/check", headers=agent, json={
        "title": "井盖", "description": "文昌路12号井盖没了", "location_text": "文昌路12号"})
    assert r.status_code == 200
    assert {d["number"] for d in r.json()} == {first_no, second_no}
    # Same caller, different subject: suggested because it is the same citizen.
    r = client.post("/api/duplicates/check", headers=agent, json={
        "description": "小区停水三天了", "citizen_phone": "13800138000"})
    assert [d["number"] for d in r.json()] == [first_no]
    assert r.json()[0]["reasons"] == ["same_citizen"]

    # Acting on the suggestion: merge the new case into the first.
    r = client.post(f"/api/cases/{second_no}/merge", headers=agent, json={"into": first_no})
    assert r.status_code == 200 and r.json()["status"] == "merged"


def test_duplicate_check_rejects_bad_input_and_needs_a_role(client):  # noqa: F811
    agent = bearer(client, "agent01")
    r = client.post("/api/duplicates/check", headers=agent, json={"description": ""})
    assert r.status_code == 422
    r = client.post("/api/duplicates/check", headers=agent,
                    json={"description": "x", "latitude": 123})
    assert r.status_code == 422
    roads = bearer(client, "dept-roads")
    assert client.post("/api/duplicates/check", headers=roads,
                       json={"description": "井盖"}).status_code == 403
