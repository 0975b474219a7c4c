//! junit.xml is XML 1.0 whatever the names and messages hold (issue 19,
//! defect 13): characters XML 1.0 forbids even escaped (controls, U+FFFE,
//! U+FFFF) become U+FFFD, and a strict parser reads the file back.

use gpuclaim::nightly::{Case, Report, Status, Suite};

#[test]
fn junit_with_characters_xml_forbids_still_parses() {
    let hostile = "a\u{0}b\u{1}c\u{1b}[31md\u{b}e\u{fffe}f\u{ffff}g";
    let kept = "\t\n tab \u{7f} \u{d7ff} \u{e000} \u{fffd} \u{10000} \u{10ffff} <&>\"'";
    let mut suite = Suite::new(hostile);
    suite.cases.push(Case {
        class: "scenario.fixed".into(),
        name: format!("{hostile} {kept}"),
        status: Status::Failed {
            message: hostile.into(),
            detail: format!("{hostile}\n{kept}"),
        },
        seconds: 0.0,
        facts: String::new(),
        counterexample: Some(hostile.into()),
    });
    let report = Report {
        title: hostile.into(),
        notes: Vec::new(),
        suites: vec![suite],
        plots: Vec::new(),
    };
    let xml = report.junit_xml();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let replaced = "a\u{fffd}b\u{fffd}c\u{fffd}[31md\u{fffd}e\u{fffd}f\u{fffd}g";
    let root = doc.root_element();
    assert_eq!(root.attribute("name"), Some(replaced));
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase"))
        .unwrap();
    // Attribute values normalise tab and newline to spaces (XML 1.0 3.3.3).
    assert_eq!(
        case.attribute("name"),
        Some(format!("{replaced} {}", kept.replace(['\t', '\n'], " ")).as_str())
    );
    let failure = case.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(
        failure.text(),
        Some(format!("{replaced}\n{kept}\ncounterexample:\n{replaced}").as_str())
    );
}
