"""Aegis: playbook steps checked and filled in, vulnerability reports (OSV, pip-audit, osv-scanner,
CycloneDX) read with CVSS scores computed from their vectors."""

import pytest

from cauldron.aegis import playbooks, vulns
from cauldron.aegis.rules import RuleError

STEPS = [
	{"action": "add_note", "note": "Brute force against {key}"},
	{"action": "disable_user", "user": "{key}"},
	{"action": "revoke_access", "user": "{key}"},
	{"action": "notify_role", "role": "System Manager", "message": "{title} ({severity})"},
	{
		"action": "open_agent_task",
		"agent_definition": "Triage",
		"task_type": "triage",
		"title": "Investigate {incident}",
		"priority": 8,
	},
]


def test_steps_are_compiled_and_filled_from_the_incident():
	steps = playbooks.compile_steps(STEPS)
	context = {"key": "victim@example.com", "title": "Brute force", "severity": "high", "incident": "INC-1"}
	assert [s.action for s in steps] == [s["action"] for s in STEPS]
	assert steps[1].render(context) == {"user": "victim@example.com"}
	assert steps[3].render(context) == {"role": "System Manager", "message": "Brute force (high)"}
	assert steps[4].render(context)["priority"] == 8
	assert steps[4].describe(context) == (
		"open_agent_task(agent_definition=Triage, task_type=triage, title=Investigate INC-1, priority=8)"
	)


@pytest.mark.parametrize(
	"steps, message",
	[
		([], "non-empty JSON list"),
		({"action": "add_note"}, "non-empty JSON list"),
		([{"note": "x"}], r"steps\[0\]: an object with an action"),
		([{"action": "format_disk"}], "unknown action 'format_disk'"),
		([{"action": "disable_user"}], "disable_user needs user"),
		([{"action": "disable_user", "user": "x", "force": True}], "takes no 'force'"),
		([{"action": "add_note", "note": "{password}"}], r"unknown placeholder \{password\}"),
		(
			[
				{
					"action": "open_agent_task",
					"agent_definition": "a",
					"task_type": "t",
					"title": "x",
					"priority": 11,
				}
			],
			"priority is a whole number from 1 to 10",
		),
		([{"action": "add_note", "note": "x"}] * 21, "at most 20 steps"),
	],
)
def test_bad_steps_say_which_and_why(steps, message):
	with pytest.raises(RuleError, match=message):
		playbooks.compile_steps(steps)


OSV = {
	"id": "GHSA-xxxx-yyyy-zzzz",
	"aliases": ["CVE-2024-0001"],
	"summary": "Remote code execution in examplelib",
	"details": "A crafted request runs code.",
	"published": "2024-01-02T03:04:05Z",
	"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
	"affected": [
		{
			"package": {"name": "examplelib", "ecosystem": "PyPI"},
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0.1"}]}],
		}
	],
}


def test_osv_record_scored_from_its_vector():
	(found,) = vulns.parse(OSV)
	assert found.vulnerability_id == "GHSA-xxxx-yyyy-zzzz"
	assert (found.cvss_score, found.severity) == (9.8, "critical")
	assert found.title == "Remote code execution in examplelib"
	assert found.aliases == ["CVE-2024-0001"]
	assert found.affected_systems == {"packages": {"examplelib": {"ecosystem": "PyPI", "fixed": ["2.0.1"]}}}
	assert found.remediation_steps == "Upgrade examplelib to 2.0.1 or later"
	assert found.discovered_at.year == 2024


def test_osv_scanner_output_is_deduplicated_by_id():
	report = {
		"results": [
			{
				"packages": [
					{
						"package": {"name": "examplelib", "version": "1.0", "ecosystem": "PyPI"},
						"vulnerabilities": [OSV],
					},
					{
						"package": {"name": "otherlib", "version": "3.1", "ecosystem": "PyPI"},
						"vulnerabilities": [
							{**OSV, "affected": [{"package": {"name": "otherlib", "ecosystem": "PyPI"}}]},
							{
								"id": "PYSEC-2024-9",
								"summary": "Low one",
								"severity": [
									{
										"type": "CVSS_V3",
										"score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
									}
								],
							},
						],
					},
				]
			}
		]
	}
	found = {v.vulnerability_id: v for v in vulns.parse(report)}
	assert set(found) == {"GHSA-xxxx-yyyy-zzzz", "PYSEC-2024-9"}
	assert set(found["GHSA-xxxx-yyyy-zzzz"].affected_systems["packages"]) == {"examplelib", "otherlib"}
	assert found["PYSEC-2024-9"].severity == "low" and found["PYSEC-2024-9"].cvss_score < 4


def test_pip_audit_output():
	report = {
		"dependencies": [
			{
				"name": "requests",
				"version": "2.0.0",
				"vulns": [
					{
						"id": "PYSEC-2014-13",
						"fix_versions": ["2.3.0"],
						"aliases": ["CVE-2014-1829"],
						"description": "Requests leaks credentials on redirect.",
					}
				],
			},
			{"name": "six", "version": "1.16.0", "vulns": []},
		]
	}
	(found,) = vulns.parse(report)
	assert found.vulnerability_id == "PYSEC-2014-13"
	assert found.severity == "medium" and found.cvss_score is None
	assert found.remediation_steps == "Upgrade requests to 2.3.0"
	assert found.affected_systems["packages"]["requests"]["version"] == "2.0.0"


def test_cyclonedx_bom():
	bom = {
		"bomFormat": "CycloneDX",
		"specVersion": "1.5",
		"components": [{"bom-ref": "pkg:pypi/jinja2@2.10", "name": "jinja2", "version": "2.10"}],
		"vulnerabilities": [
			{
				"id": "CVE-2019-10906",
				"ratings": [
					{"method": "CVSSv31", "vector": "AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N", "severity": "high"}
				],
				"description": "Sandbox escape in Jinja2",
				"recommendation": "Upgrade to 2.10.1",
				"affects": [{"ref": "pkg:pypi/jinja2@2.10"}],
			},
			{"id": "CVE-2099-0001", "ratings": [{"severity": "critical"}], "description": "No vector"},
		],
	}
	found = {v.vulnerability_id: v for v in vulns.parse(bom)}
	# the vector decides, not the report's own word ("high")
	assert found["CVE-2019-10906"].cvss_score == 6.8 and found["CVE-2019-10906"].severity == "medium"
	assert found["CVE-2019-10906"].affected_systems["packages"]["jinja2"]["version"] == "2.10"
	assert (found["CVE-2099-0001"].cvss_score, found["CVE-2099-0001"].severity) == (None, "critical")


def test_cvss_versions_and_bad_vectors():
	assert vulns.score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") == (9.3, "critical")
	assert vulns.score("AV:N/AC:L/Au:N/C:P/I:P/A:P") == (7.5, "high")
	with pytest.raises(vulns.ReportError, match="bad CVSS vector"):
		vulns.score("CVSS:3.1/AV:X")
	with pytest.raises(vulns.ReportError, match="not a vulnerability report"):
		vulns.parse("hello")
