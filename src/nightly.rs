//! The nightly regression: what it runs ([`NightlyConfig`], built in or
//! read from a file), the run itself ([`run`], which a binary of its own
//! can call with its own allocators registered) and its report: suites of
//! test cases, each passed, failed (with its shrunk counterexample in step
//! syntax) or not run, rendered as JUnit XML for CI systems, a CSV for
//! spreadsheets and one self-contained HTML page (no script, no font or
//! file from the network) for people.

use std::fmt::Write as _;

pub mod config;
mod run;

pub use config::{ConfigError, Expectation, ExploreSuite, NightlyConfig, UnderTest};
pub use run::{Observer, Options, device_name, run};

use crate::report::CsvDoc;

/// What became of one test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Passed,
    /// `message` is one line; `detail` is the mismatches and the
    /// counterexample or trace, in step syntax.
    Failed {
        message: String,
        detail: String,
    },
    /// Not run: interrupted, or out of budget.
    NotRun {
        reason: String,
    },
}

impl Status {
    /// Passed when there is no problem; otherwise failed, with the problems
    /// as the message and `detail` below it.
    pub fn from_problems(problems: &[String], detail: impl FnOnce() -> String) -> Status {
        if problems.is_empty() {
            Status::Passed
        } else {
            Status::Failed {
                message: problems.join("; "),
                detail: detail(),
            }
        }
    }
}

/// One test case: a scenario under a policy, a campaign, a check, a replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// What kind of case, e.g. `scenario.fixed`, `explore`, `check`.
    pub class: String,
    pub name: String,
    pub status: Status,
    pub seconds: f64,
    /// Short facts shown in the HTML table and the CSV (e.g. `runs=2000
    /// found=no-steal-after-dealloc`).
    pub facts: String,
    /// A counterexample scenario (TOML) when the case produced one, shown
    /// whether the case passed (an expected catch) or failed.
    pub counterexample: Option<String>,
}

impl Case {
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }
    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Failed { .. })
    }
    fn status_word(&self) -> &'static str {
        match self.status {
            Status::Passed => "pass",
            Status::Failed { .. } => "fail",
            Status::NotRun { .. } => "not-run",
        }
    }
}

/// A group of cases of one kind.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Suite {
    pub name: String,
    pub cases: Vec<Case>,
}

impl Suite {
    pub fn new(name: &str) -> Self {
        Suite {
            name: name.to_string(),
            cases: Vec::new(),
        }
    }
    fn count(&self, f: impl Fn(&Case) -> bool) -> usize {
        self.cases.iter().filter(|c| f(c)).count()
    }
    fn seconds(&self) -> f64 {
        self.cases.iter().map(|c| c.seconds).sum()
    }
}

/// A plot to show on the page: a title and the SVG text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plot {
    pub title: String,
    pub svg: String,
}

/// The whole nightly report.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Report {
    pub title: String,
    /// Lines shown under the title: version, budget, seed, interruption.
    pub notes: Vec<String>,
    pub suites: Vec<Suite>,
    pub plots: Vec<Plot>,
}

impl Report {
    pub fn cases(&self) -> impl Iterator<Item = (&Suite, &Case)> {
        self.suites
            .iter()
            .flat_map(|s| s.cases.iter().map(move |c| (s, c)))
    }
    /// True when no case failed and none was left unrun.
    pub fn clean(&self) -> bool {
        self.cases().all(|(_, c)| c.passed())
    }
    pub fn totals(&self) -> (usize, usize, usize) {
        let mut t = (0, 0, 0);
        for (_, c) in self.cases() {
            match c.status {
                Status::Passed => t.0 += 1,
                Status::Failed { .. } => t.1 += 1,
                Status::NotRun { .. } => t.2 += 1,
            }
        }
        t
    }

    /// JUnit XML: one `<testsuite>` per suite, one `<testcase>` per case; a
    /// failure carries its counterexample in the element's text; a case not
    /// run is `<skipped>`.
    pub fn junit_xml(&self) -> String {
        let (passed, failed, not_run) = self.totals();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{not_run}\" errors=\"0\">",
            escape(&self.title),
            passed + failed + not_run
        );
        for s in &self.suites {
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\" time=\"{:.3}\">",
                escape(&s.name),
                s.cases.len(),
                s.count(Case::failed),
                s.count(|c| matches!(c.status, Status::NotRun { .. })),
                s.seconds()
            );
            for c in &s.cases {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    escape(&c.class),
                    escape(&c.name),
                    c.seconds
                );
                match &c.status {
                    Status::Passed => {
                        if c.facts.is_empty() {
                            out.push_str("/>\n");
                        } else {
                            let _ = writeln!(
                                out,
                                ">\n      <system-out>{}</system-out>\n    </testcase>",
                                escape(&c.facts)
                            );
                        }
                    }
                    Status::Failed { message, detail } => {
                        let mut text = detail.clone();
                        if let Some(ce) = &c.counterexample {
                            text.push_str("\ncounterexample:\n");
                            text.push_str(ce);
                        }
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\" type=\"regression\">{}</failure>\n    </testcase>",
                            escape(message),
                            escape(&text)
                        );
                    }
                    Status::NotRun { reason } => {
                        let _ = writeln!(
                            out,
                            ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                            escape(reason)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }

    /// One row per case: suite, class, name, status, seconds, facts, message.
    pub fn summary_csv(&self) -> Vec<u8> {
        let mut csv = CsvDoc::new([
            "suite", "class", "name", "status", "seconds", "facts", "message",
        ]);
        for (s, c) in self.cases() {
            let message = match &c.status {
                Status::Passed => String::new(),
                Status::Failed { message, .. } => message.clone(),
                Status::NotRun { reason } => reason.clone(),
            };
            csv.row([
                s.name.as_str(),
                c.class.as_str(),
                c.name.as_str(),
                c.status_word(),
                &format!("{:.3}", c.seconds),
                c.facts.as_str(),
                message.as_str(),
            ]);
        }
        csv.into_bytes()
    }

    /// The page: totals, the results table, failures and counterexamples,
    /// and the plots inline. Readable offline: no script, no external file.
    pub fn index_html(&self) -> String {
        let (passed, failed, not_run) = self.totals();
        let verdict = if self.clean() {
            "PASS"
        } else if failed > 0 {
            "FAIL"
        } else {
            "INCOMPLETE"
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{}</style>\n</head>\n<body>\n",
            escape(&self.title),
            STYLE
        );
        let _ = writeln!(out, "<h1>{}</h1>", escape(&self.title));
        let _ = writeln!(
            out,
            "<p id=\"verdict\" class=\"{}\"><strong>{verdict}</strong>: {passed} passed, {failed} failed, {not_run} not run</p>",
            verdict.to_lowercase()
        );
        if !self.notes.is_empty() {
            out.push_str("<ul class=\"notes\">\n");
            for n in &self.notes {
                let _ = writeln!(out, "<li>{}</li>", escape(n));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("<h2>Results</h2>\n<table id=\"results\">\n<thead><tr><th>suite</th><th>case</th><th>status</th><th>seconds</th><th>facts</th></tr></thead>\n<tbody>\n");
        for (i, (s, c)) in self.cases().enumerate() {
            let link = if c.failed() || c.counterexample.is_some() {
                format!(" <a href=\"#case-{i}\">details</a>")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}{link}</td><td>{:.3}</td><td>{}</td></tr>",
                c.status_word(),
                escape(&s.name),
                escape(&c.name),
                c.status_word(),
                c.seconds,
                escape(&c.facts)
            );
        }
        out.push_str("</tbody>\n</table>\n");
        let detailed: Vec<(usize, &Suite, &Case)> = self
            .cases()
            .enumerate()
            .filter(|(_, (_, c))| c.failed() || c.counterexample.is_some())
            .map(|(i, (s, c))| (i, s, c))
            .collect();
        if !detailed.is_empty() {
            out.push_str("<h2>Failures and counterexamples</h2>\n");
            for (i, s, c) in detailed {
                let _ = writeln!(
                    out,
                    "<section id=\"case-{i}\" class=\"{}\">\n<h3>{} / {} ({})</h3>",
                    c.status_word(),
                    escape(&s.name),
                    escape(&c.name),
                    c.status_word()
                );
                if let Status::Failed { message, detail } = &c.status {
                    let _ = writeln!(
                        out,
                        "<p>{}</p>\n<pre>{}</pre>",
                        escape(message),
                        escape(detail)
                    );
                }
                if let Some(ce) = &c.counterexample {
                    let _ = writeln!(
                        out,
                        "<p>Counterexample scenario:</p>\n<pre>{}</pre>",
                        escape(ce)
                    );
                }
                out.push_str("</section>\n");
            }
        }
        if !self.plots.is_empty() {
            out.push_str("<h2>Plots</h2>\n");
            for p in &self.plots {
                let _ = writeln!(
                    out,
                    "<figure class=\"plot\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                    strip_xml_declaration(&p.svg),
                    escape(&p.title)
                );
            }
        }
        out.push_str("</body>\n</html>\n");
        out
    }
}

const STYLE: &str = "body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
tr.fail td { background: #fdd; }
tr.not-run td { background: #eee; color: #666; }
#verdict.pass { color: #060; }
#verdict.fail, #verdict.incomplete { color: #a00; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
figure.plot svg { max-width: 100%; height: auto; border: 1px solid #ddd; }
";

/// An SVG file's text without its `<?xml …?>` line, for inline use.
fn strip_xml_declaration(svg: &str) -> &str {
    let t = svg.trim_start();
    if t.starts_with("<?xml")
        && let Some(end) = t.find("?>")
    {
        return t[end + 2..].trim_start();
    }
    t
}

/// Whether XML 1.0 allows `c` in a document (production [2] Char).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes text for XML and HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Characters XML 1.0 cannot carry at all, escaped or not (its
            // Char production): controls but tab, newline and carriage
            // return, and the noncharacters U+FFFE and U+FFFF. (Rust
            // strings hold no surrogates.)
            c if !xml_char(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut s = Suite::new("scenarios");
        s.cases.push(Case {
            class: "scenario.fixed".into(),
            name: "a <b> & \"c\"".into(),
            status: Status::Passed,
            seconds: 0.5,
            facts: String::new(),
            counterexample: None,
        });
        s.cases.push(Case {
            class: "scenario.legacy".into(),
            name: "wrong".into(),
            status: Status::Failed {
                message: "vm.a: expected running, got stopped".into(),
                detail: "0 create-vm a ok".into(),
            },
            seconds: 0.25,
            facts: "steps=1".into(),
            counterexample: Some("name = \"x\"\nsteps = [\"kube-takeover\"]\n".into()),
        });
        s.cases.push(Case {
            class: "explore".into(),
            name: "late".into(),
            status: Status::NotRun {
                reason: "interrupted".into(),
            },
            seconds: 0.0,
            facts: String::new(),
            counterexample: None,
        });
        Report {
            title: "gpuclaim nightly".into(),
            notes: vec!["seed 1".into()],
            suites: vec![s],
            plots: vec![],
        }
    }

    #[test]
    fn junit_is_exact() {
        let xml = sample().junit_xml();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<testsuites name=\"gpuclaim nightly\" tests=\"3\" failures=\"1\" skipped=\"1\" errors=\"0\">
  <testsuite name=\"scenarios\" tests=\"3\" failures=\"1\" skipped=\"1\" errors=\"0\" time=\"0.750\">
    <testcase classname=\"scenario.fixed\" name=\"a &lt;b&gt; &amp; &quot;c&quot;\" time=\"0.500\"/>
    <testcase classname=\"scenario.legacy\" name=\"wrong\" time=\"0.250\">
      <failure message=\"vm.a: expected running, got stopped\" type=\"regression\">0 create-vm a ok
counterexample:
name = &quot;x&quot;
steps = [&quot;kube-takeover&quot;]
</failure>
    </testcase>
    <testcase classname=\"explore\" name=\"late\" time=\"0.000\">
      <skipped message=\"interrupted\"/>
    </testcase>
  </testsuite>
</testsuites>
"
        );
    }

    #[test]
    fn csv_and_html() {
        let r = sample();
        assert!(!r.clean());
        assert_eq!(r.totals(), (1, 1, 1));
        let csv = String::from_utf8(r.summary_csv()).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert_eq!(
            csv.lines().nth(2).unwrap(),
            "scenarios,scenario.legacy,wrong,fail,0.250,steps=1,\"vm.a: expected running, got stopped\""
        );
        let html = r.index_html();
        assert!(html.contains("<strong>FAIL</strong>: 1 passed, 1 failed, 1 not run"));
        assert!(html.contains("<tr class=\"fail\"><td>scenarios</td><td>wrong</td><td>fail <a href=\"#case-1\">details</a>"));
        assert!(html.contains("<section id=\"case-1\" class=\"fail\">"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http"), "nothing from the network");
    }

    #[test]
    fn status_from_problems() {
        assert_eq!(
            Status::from_problems(&[], || unreachable!("no detail when passed")),
            Status::Passed
        );
        assert_eq!(
            Status::from_problems(&["a".into(), "b".into()], || "d".into()),
            Status::Failed {
                message: "a; b".into(),
                detail: "d".into()
            }
        );
    }

    #[test]
    fn svg_declaration_is_stripped() {
        assert_eq!(
            strip_xml_declaration("<?xml version=\"1.0\"?>\n<svg/>"),
            "<svg/>"
        );
        assert_eq!(strip_xml_declaration("<svg/>"), "<svg/>");
    }
}
