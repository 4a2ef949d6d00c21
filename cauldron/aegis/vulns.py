"""Vulnerability reports into Aegis Vulnerability values (framework-free).

Reads what scanners emit:
- OSV JSON: one OSV record, a list of them, osv-scanner's output (`{"results": [{"packages": [{"package":
  {...}, "vulnerabilities": [OSV...]}]}]}`) and pip-audit's (`{"dependencies": [{"name", "version",
  "vulns": [{"id", "aliases", "fix_versions", "description"}]}]}`);
- CycloneDX JSON with a `vulnerabilities` list (`ratings` with `vector` and `method`, `affects` refs
  resolved to the BOM's components).

Each vulnerability becomes one value keyed by `vulnerability_id` (the OSV id or CycloneDX id; a CVE
alias is kept in `aliases`): several packages affected by one id are merged into one
`affected_systems`. `cvss_score` is computed from the CVSS vector (v2, v3.x or v4.0) by the `cvss`
library (Red Hat Product Security's, the reference implementation of FIRST's formulas), never
taken on trust; `severity` follows the score's band (FIRST's qualitative scale, lower-cased), or the
report's own rating when it gives no vector, or "medium" when it gives neither (an unrated
vulnerability is still looked at).
"""

from dataclasses import dataclass, field
from datetime import datetime, timezone

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from cauldron.aegis.rules import RuleError

MAX_TITLE = 255
SEVERITY_WORDS = {
	"none": "info",
	"info": "info",
	"informational": "info",
	"low": "low",
	"moderate": "medium",
	"medium": "medium",
	"high": "high",
	"important": "high",
	"critical": "critical",
}


class ReportError(RuleError):
	"""A report that is neither OSV, pip-audit, osv-scanner nor CycloneDX JSON, or a bad vector."""


@dataclass
class Vulnerability:
	vulnerability_id: str
	title: str
	severity: str
	cvss_score: float | None = None
	cvss_vector: str | None = None
	description: str = ""
	affected_systems: dict = field(default_factory=dict)
	remediation_steps: str = ""
	aliases: list[str] = field(default_factory=list)
	discovered_at: datetime | None = None

	def merge(self, other: "Vulnerability") -> None:
		for name, info in other.affected_systems.get("packages", {}).items():
			self.affected_systems.setdefault("packages", {})[name] = info
		self.aliases = list(dict.fromkeys(self.aliases + other.aliases))
		if other.remediation_steps and other.remediation_steps not in self.remediation_steps:
			self.remediation_steps = "\n".join(
				filter(None, [self.remediation_steps, other.remediation_steps])
			)
		if (other.cvss_score or 0) > (self.cvss_score or 0):
			self.cvss_score, self.cvss_vector, self.severity = (
				other.cvss_score,
				other.cvss_vector,
				other.severity,
			)


def score(vector: str) -> tuple[float, str]:
	"""(base score, severity) of a CVSS v2, v3.x or v4.0 vector; ReportError when it is malformed."""
	vector = (vector or "").strip()
	try:
		if vector.startswith("CVSS:4."):
			result = CVSS4(vector)
			base, word = float(result.base_score), result.severity
		elif vector.startswith("CVSS:3."):
			result = CVSS3(vector)
			base, word = float(result.base_score), result.severities()[0]
		else:
			result = CVSS2(vector)
			base = float(result.base_score)
			word = "None" if base == 0 else "Low" if base < 4 else "Medium" if base < 7 else "High"
	except CVSSError as e:
		raise ReportError(f"bad CVSS vector {vector!r}: {e}") from None
	return base, SEVERITY_WORDS.get(word.lower(), "medium")


def _time(text) -> datetime | None:
	if not isinstance(text, str):
		return None
	try:
		moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
	except ValueError:
		return None
	return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _rated(vectors: list[str], words: list[str]) -> tuple[float | None, str | None, str]:
	best = (None, None, None)
	for vector in vectors:
		base, word = score(vector)
		if best[0] is None or base > best[0]:
			best = (base, vector, word)
	if best[0] is not None:
		return best
	for word in words:
		if isinstance(word, str) and word.lower() in SEVERITY_WORDS:
			return None, None, SEVERITY_WORDS[word.lower()]
	return None, None, "medium"


def _title(*texts) -> str:
	for text in texts:
		if isinstance(text, str) and text.strip():
			line = text.strip().splitlines()[0]
			return line if len(line) <= MAX_TITLE else line[: MAX_TITLE - 1] + "…"
	return ""


def from_osv(record: dict, package: dict | None = None) -> Vulnerability:
	if not isinstance(record, dict) or not isinstance(record.get("id"), str):
		raise ReportError("an OSV record needs an id")
	vectors = [
		s.get("score")
		for s in record.get("severity") or []
		if isinstance(s, dict) and str(s.get("type", "")).startswith("CVSS") and s.get("score")
	]
	words = [(record.get("database_specific") or {}).get("severity")]
	base, vector, severity = _rated(vectors, words)
	packages = {}
	fixes = []
	for affected in record.get("affected") or []:
		pkg = affected.get("package") or {}
		if not pkg.get("name"):
			continue
		fixed = [
			event["fixed"]
			for r in affected.get("ranges") or []
			for event in r.get("events") or []
			if isinstance(event, dict) and event.get("fixed")
		]
		packages[pkg["name"]] = {"ecosystem": pkg.get("ecosystem"), "fixed": fixed}
		fixes.extend(f"Upgrade {pkg['name']} to {f} or later" for f in fixed)
	if package and package.get("name"):
		packages.setdefault(package["name"], {}).update(
			{
				k: v
				for k, v in {"ecosystem": package.get("ecosystem"), "version": package.get("version")}.items()
				if v
			}
		)
	return Vulnerability(
		vulnerability_id=record["id"],
		title=_title(record.get("summary"), record.get("details"), record["id"]),
		severity=severity,
		cvss_score=base,
		cvss_vector=vector,
		description=record.get("details") or record.get("summary") or "",
		affected_systems={"packages": packages} if packages else {},
		remediation_steps="\n".join(dict.fromkeys(fixes)),
		aliases=[a for a in record.get("aliases") or [] if isinstance(a, str)],
		discovered_at=_time(record.get("published")) or _time(record.get("modified")),
	)


def from_pip_audit(dependency: dict, vuln: dict) -> Vulnerability:
	if not isinstance(vuln.get("id"), str):
		raise ReportError("a pip-audit vulnerability needs an id")
	name, version = dependency.get("name"), dependency.get("version")
	fixes = vuln.get("fix_versions") or []
	return Vulnerability(
		vulnerability_id=vuln["id"],
		title=_title(vuln.get("description"), vuln["id"]),
		severity="medium",
		description=vuln.get("description") or "",
		affected_systems={"packages": {name: {"ecosystem": "PyPI", "version": version, "fixed": fixes}}},
		remediation_steps=f"Upgrade {name} to {' or '.join(fixes)}" if fixes else "",
		aliases=[a for a in vuln.get("aliases") or [] if isinstance(a, str)],
	)


def from_cyclonedx(bom: dict) -> list[Vulnerability]:
	components = {
		c.get("bom-ref"): c for c in bom.get("components") or [] if isinstance(c, dict) and c.get("bom-ref")
	}
	found = []
	for vuln in bom.get("vulnerabilities") or []:
		if not isinstance(vuln, dict) or not isinstance(vuln.get("id"), str):
			raise ReportError("a CycloneDX vulnerability needs an id")
		ratings = [r for r in vuln.get("ratings") or [] if isinstance(r, dict)]
		vectors = []
		for rating in ratings:
			vector, method = rating.get("vector"), str(rating.get("method", ""))
			if not vector or not method.upper().startswith("CVSS"):
				continue
			if not vector.startswith("CVSS:") and method.upper() in ("CVSSV3", "CVSSV31", "CVSSV4"):
				prefix = {"CVSSV3": "CVSS:3.0/", "CVSSV31": "CVSS:3.1/", "CVSSV4": "CVSS:4.0/"}[
					method.upper()
				]
				vector = prefix + vector
			vectors.append(vector)
		base, vector, severity = _rated(vectors, [r.get("severity") for r in ratings])
		packages = {}
		for affect in vuln.get("affects") or []:
			component = components.get(affect.get("ref")) if isinstance(affect, dict) else None
			if component:
				packages[component.get("name")] = {
					"version": component.get("version"),
					"purl": component.get("purl"),
				}
		found.append(
			Vulnerability(
				vulnerability_id=vuln["id"],
				title=_title(vuln.get("description"), vuln.get("detail"), vuln["id"]),
				severity=severity,
				cvss_score=base,
				cvss_vector=vector,
				description=vuln.get("detail") or vuln.get("description") or "",
				affected_systems={"packages": packages} if packages else {},
				remediation_steps=vuln.get("recommendation") or "",
				aliases=[
					r.get("id") for r in vuln.get("references") or [] if isinstance(r, dict) and r.get("id")
				],
				discovered_at=_time(vuln.get("published")) or _time(vuln.get("created")),
			)
		)
	return found


def parse(report) -> list[Vulnerability]:
	"""The vulnerabilities of a report, one per vulnerability_id (merged across packages)."""
	items: list[Vulnerability] = []
	if isinstance(report, dict) and report.get("bomFormat") == "CycloneDX":
		items = from_cyclonedx(report)
	elif isinstance(report, dict) and isinstance(report.get("dependencies"), list):
		for dep in report["dependencies"]:
			for vuln in (dep or {}).get("vulns") or []:
				items.append(from_pip_audit(dep, vuln))
	elif isinstance(report, dict) and isinstance(report.get("results"), list):
		for result in report["results"]:
			for pkg in (result or {}).get("packages") or []:
				for record in pkg.get("vulnerabilities") or []:
					items.append(from_osv(record, pkg.get("package")))
	elif isinstance(report, dict) and "id" in report:
		items = [from_osv(report)]
	elif isinstance(report, list):
		items = [from_osv(record) for record in report]
	else:
		raise ReportError(
			"not a vulnerability report: give OSV JSON (a record or a list), osv-scanner or pip-audit JSON "
			"output, or a CycloneDX BOM with vulnerabilities"
		)
	merged: dict[str, Vulnerability] = {}
	for item in items:
		if item.vulnerability_id in merged:
			merged[item.vulnerability_id].merge(item)
		else:
			merged[item.vulnerability_id] = item
	return list(merged.values())
