//! SMS end to end: a campaign's calls ring out at a SIPp trunk, the rule's
//! `on no_answer send sms` texts each customer through the real test SMS
//! center (Jasmin in front of an upstream stand-in), the receipts settle
//! the records, and a `TD` reply puts the number on the DNC list.
//!
//! The SMS center must be running (`tests/sms_center/start.sh`); these tests
//! fail, they do not skip, when it is not.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "sms_center/control.rs"]
mod sms_center;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{CART_SCHEMA, Daemon, Sipp, free_port};
use jiff::Timestamp;
use serde_json::Value;
use sms_center::{
    FAIL_PREFIX, JasminDown, SMPP, SMPP_PASSWORD, SMPP_USER, THROTTLED_USER, WAIT, control,
    require_sms_center,
};

const LINK: &str = "https://shop.example.cn/c/7Q2";

/// A Chinese text longer than one UCS-2 part: it goes as two, the link
/// whole in one of them.
const RULES_BODY: &str = r#"
policy {
  calling hours 08:00-21:00 local
  at most 1 call per day
}

rule follow_up {
  when not customer.paid
  on no_answer send sms "cart_link" within 10m
}

sms cart_link {
  sender "10690000"
  text "{customer.name}您好！您的购物车里还有心仪的商品没有结算，库存有限，优惠今晚截止。点击 {link} 即可一键完成购买，我们为您保留到明天中午。回复TD退订"
}
"#;

/// Numbers unique to this run and `series`, so the upstream's log of
/// earlier runs and other tests does not count: `count` starting `+86138…`
/// and `failing` with the fail prefix.
fn numbers(series: u8, count: usize, failing: usize) -> Vec<String> {
    let stamp = Timestamp::now().as_second() % 10_000;
    let ok = (0..count).map(|n| format!("+86138{series}{stamp:04}{n:03}"));
    let bad = (0..failing).map(|n| format!("+{FAIL_PREFIX}{series}{stamp:04}{n}"));
    ok.chain(bad).collect()
}

/// One test at a time: replies to the test account go to whichever of its
/// binds the SMS center picks.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A spreadsheet of customers `S{first}`, … with `phones`.
fn customers_csv(
    dir: &std::path::Path,
    first: usize,
    phones: &[String],
    zone: &str,
) -> std::path::PathBuf {
    let mut csv =
        String::from("customer_id,name,phone,zone,intent,cart_value,cart_added,paid,tags\n");
    for (n, phone) in (first..).zip(phones) {
        csv.push_str(&format!(
            "S{n:03},王{n},{phone},{zone},medium,199.00,,no,\n"
        ));
    }
    let path = dir.join(format!("customers-{first}.csv"));
    std::fs::write(&path, csv).unwrap();
    path
}

/// A `[[sms_provider]]` table: `name` at `address`, binding as `user`.
fn provider(name: &str, address: &str, user: &str, password: &str) -> String {
    format!(
        r#"
[[sms_provider]]
name = "{name}"
address = "{address}"
system_id = "{user}"
password = "{password}"
window = 10
rate = 50
"#
    )
}

/// A daemon whose trunk is `sipp`, whose campaign `name` runs `rules` with
/// `campaign_extra` lines, and whose SMS go to the `providers` tables.
fn sms_daemon(
    sipp: &Sipp,
    name: &str,
    rules: &std::path::Path,
    campaign_extra: &str,
    providers: &str,
) -> Daemon {
    let tables = format!(
        r#"[[trunk]]
name = "sipp"
proxy = "127.0.0.1:{port}"
tier = "standard"
channels = 50
cps = 20

[[campaign]]
name = "{name}"
rules = "{rules}"
ring_timeout_seconds = 2
sms_link = "{LINK}"
{campaign_extra}

[sms]
per_day = 1
{providers}"#,
        port = sipp.port,
        rules = rules.display(),
    );
    Daemon::with_trunks(&tables, 0)
}

fn sms_records(daemon: &Daemon, campaign: &str) -> Vec<Value> {
    let answer = daemon.cli(&["sms", "--campaign", campaign]);
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].as_array().unwrap().clone()
}

/// Asks `probe` until it answers `Ok`, for at most `within`; fails the test
/// with the last `Err` it gave and the daemon's log.
fn poll<T>(daemon: &Daemon, within: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe() {
            Ok(found) => return found,
            Err(last) => assert!(Instant::now() < deadline, "{last}\n{}", daemon.log()),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `done` holds for the campaign's SMS records.
fn wait_for_sms(
    daemon: &Daemon,
    campaign: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    poll(daemon, WAIT * 2, || {
        let records = sms_records(daemon, campaign);
        if done(&records) {
            Ok(records)
        } else {
            Err(format!(
                "{what} did not happen; the SMS records: {records:#?}"
            ))
        }
    })
}

fn settled(record: &Value) -> bool {
    matches!(
        record["status"].as_str(),
        Some("delivered" | "undeliverable" | "expired" | "failed" | "skipped")
    )
}

/// A running campaign `name` whose calls ring out at a SIPp trunk, over
/// customers with `phones`, its SMS going to `smsc` as `user`; the SIPp
/// trunk and the folder must live as long as the daemon.
fn ringing_campaign(
    name: &str,
    smsc: &str,
    user: &str,
    phones: &[String],
) -> (Daemon, Sipp, tempfile::TempDir) {
    let providers = provider("jasmin", smsc, user, SMPP_PASSWORD);
    ringing_campaign_with(name, "", &providers, phones)
}

/// [`ringing_campaign`] with the campaign's `extra` lines and these
/// `providers` tables.
fn ringing_campaign_with(
    name: &str,
    extra: &str,
    providers: &str,
    phones: &[String],
) -> (Daemon, Sipp, tempfile::TempDir) {
    ringing_campaign_of(name, RULES_BODY, extra, providers, phones)
}

/// [`ringing_campaign_with`] running the rules `body` (after the cart
/// schema).
fn ringing_campaign_of(
    name: &str,
    body: &str,
    extra: &str,
    providers: &str,
    phones: &[String],
) -> (Daemon, Sipp, tempfile::TempDir) {
    require_sms_center();
    let sipp = Sipp::trunk_on("ring_forever", None);
    let work = tempfile::tempdir().unwrap();
    let zone = dialhound::demo::afternoon_zone(Timestamp::now());
    let rules = work.path().join("sms.rules");
    std::fs::write(&rules, format!("{CART_SCHEMA}{body}")).unwrap();
    let daemon = sms_daemon(&sipp, name, &rules, extra, providers);
    let csv = customers_csv(work.path(), 0, phones, &zone);
    let imported = daemon.cli(&["import", csv.to_str().unwrap()]);
    assert_eq!(imported["result"]["imported"], phones.len(), "{imported}");
    let started = daemon.cli(&["campaign", "start", name]);
    assert_eq!(started["ok"], true, "{started}");
    (daemon, sipp, work)
}

#[test]
fn calls_that_ring_out_text_each_customer_once_in_numbered_ucs2_parts_and_receipts_settle_them() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let phones = numbers(1, 4, 2);
    let asked_from = Timestamp::now();
    let (daemon, _sipp, _work) = ringing_campaign("fallback", SMPP, SMPP_USER, &phones);
    let records = wait_for_sms(&daemon, "fallback", "every SMS settling", |records| {
        records.len() >= phones.len() && records.iter().all(settled)
    });

    // Exactly one per customer, each following a call that rang out.
    let mut by_customer: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for record in &records {
        by_customer
            .entry(record["customer"].as_str().unwrap())
            .or_default()
            .push(record);
    }
    assert_eq!(by_customer.len(), phones.len(), "{records:#?}");
    for (customer, texts) in &by_customer {
        assert_eq!(texts.len(), 1, "{customer} got {texts:#?}");
        let record = texts[0];
        assert_eq!(record["trigger"], "no_answer", "{record}");
        assert_eq!(record["rule"], "follow_up");
        assert_eq!(record["coding"], "ucs2");
        assert_eq!(record["part_count"], 2, "{record}");
        assert_eq!(record["submissions"], 1, "{record}");
        // Within the rule's delay of the call's end.
        let created: Timestamp = record["created_at"].as_str().unwrap().parse().unwrap();
        let deadline: Timestamp = record["deadline"].as_str().unwrap().parse().unwrap();
        assert!(created >= asked_from, "{record}");
        assert_eq!(deadline.as_second() - created.as_second(), 600, "{record}");
        let submitted = record["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| event["status"] == "submitting")
            .and_then(|event| event["at"].as_str())
            .map(|at| at.parse::<Timestamp>().unwrap())
            .unwrap_or_else(|| panic!("never submitted: {record}"));
        assert!(submitted <= deadline, "{record}");
    }

    // The receipts: the failing prefix undeliverable, the rest delivered.
    let cdrs = daemon.cli(&["cdr", "--campaign", "fallback"]);
    let customer_phone: BTreeMap<String, String> = phones
        .iter()
        .enumerate()
        .map(|(n, phone)| (format!("S{n:03}"), phone.clone()))
        .collect();
    for record in &records {
        let phone = &customer_phone[record["customer"].as_str().unwrap()];
        let expected = if phone[1..].starts_with(FAIL_PREFIX) {
            "undeliverable"
        } else {
            "delivered"
        };
        assert_eq!(record["status"], expected, "{phone}: {record}\n{cdrs}");
        for part in record["parts"].as_array().unwrap() {
            assert!(part["receipt"].is_string(), "{record}");
        }
    }

    // What the upstream SMSC got: two UCS-2 parts per number, numbered 1
    // and 2 of one reference, the link whole in one part, joined to the text.
    for phone in &phones {
        let got = sms_center::upstream_has(&phone[1..], 2);
        assert_eq!(got.len(), 2, "{phone}: {got:#?}");
        let mut numbered: Vec<(u8, String)> = got
            .iter()
            .map(|message| {
                assert_eq!(message["data_coding"], 8, "{message}");
                assert_eq!(message["registered_delivery"], 1, "{message}");
                let udh = message["udh_hex"].as_str().unwrap();
                assert_eq!(&udh[..6], "050003", "{message}");
                assert_eq!(&udh[8..10], "02", "two parts: {message}");
                let part = u8::from_str_radix(&udh[10..12], 16).unwrap();
                (part, message["text"].as_str().unwrap().to_owned())
            })
            .collect();
        numbered.sort();
        assert_eq!(numbered.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2]);
        assert!(
            numbered.iter().any(|(_, text)| text.contains(LINK)),
            "{numbered:?}"
        );
        let whole: String = numbered.into_iter().map(|(_, text)| text).collect();
        assert!(whole.ends_with("回复TD退订"), "{whole}");
        assert!(whole.contains("您好！您的购物车"), "{whole}");
    }

    // Counted in the metrics by provider and status.
    let page = daemon.scrape();
    assert!(
        page.contains("dialhound_sms_total{provider=\"jasmin\",status=\"delivered\"} 4"),
        "{page}"
    );
    assert!(
        page.contains("dialhound_sms_total{provider=\"jasmin\",status=\"undeliverable\"} 2"),
        "{page}"
    );
    assert!(page.contains("dialhound_sms_provider_bound{provider=\"jasmin\"} 1"));

    // A TD reply from one of them puts the number on the DNC list.
    let replier = &phones[0];
    let sent = control(&format!("/mo?src={}&dst=10690000&text=TD", &replier[1..]));
    assert_eq!(sent["sent"], true, "{sent}");
    poll(&daemon, WAIT, || {
        let listed = daemon.cli(&["dnc", "list"]);
        let found = listed["result"].as_array().is_some_and(|entries| {
            entries
                .iter()
                .any(|entry| entry["phone"] == replier.as_str())
        });
        found
            .then_some(())
            .ok_or(format!("the TD reply did not reach the DNC list: {listed}"))
    });
    assert!(
        daemon
            .scrape()
            .contains("dialhound_sms_replies_total{kind=\"opt_out\",provider=\"jasmin\"} 1")
    );
}

#[test]
fn an_sms_written_before_a_kill_9_is_sent_exactly_once_after_the_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A provider nobody listens on: the SMS are written and wait.
    let nowhere = free_port().to_string();
    let phones = numbers(2, 3, 0);
    let (mut daemon, _sipp, _work) = ringing_campaign("restart", &nowhere, SMPP_USER, &phones);
    let queued = wait_for_sms(&daemon, "restart", "every SMS written", |records| {
        records.len() == phones.len() && records.iter().all(|r| r["status"] == "queued")
    });
    daemon.kill_hard();
    for phone in &phones {
        assert!(sms_center::upstream_messages(&phone[1..]).is_empty());
    }

    // The same records after the restart, now with a provider that answers.
    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(&daemon.config, config.replace(&nowhere, SMPP)).unwrap();
    daemon.restart();
    let records = wait_for_sms(&daemon, "restart", "every SMS delivered", |records| {
        records.len() >= phones.len() && records.iter().all(|r| r["status"] == "delivered")
    });
    let ids = |records: &[Value]| -> Vec<u64> {
        records.iter().map(|r| r["id"].as_u64().unwrap()).collect()
    };
    assert_eq!(ids(&records), ids(&queued), "{records:#?}");
    for record in &records {
        assert_eq!(record["submissions"], 1, "{record}");
    }
    // Exactly once at the upstream: its two parts.
    for phone in &phones {
        let got = sms_center::upstream_has(&phone[1..], 2);
        assert_eq!(got.len(), 2, "{phone} got {got:#?}");
    }
}

#[test]
fn an_account_the_sms_center_throttles_slows_down_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The account takes 2 messages a second; the provider asks for 50.
    let phones = numbers(3, 4, 0);
    let (daemon, _sipp, _work) = ringing_campaign("throttled", SMPP, THROTTLED_USER, &phones);
    let records = wait_for_sms(&daemon, "throttled", "every SMS delivered", |records| {
        records.len() >= phones.len() && records.iter().all(|r| r["status"] == "delivered")
    });
    assert_eq!(records.len(), phones.len(), "{records:#?}");
    for record in &records {
        assert_eq!(record["submissions"], 1, "{record}");
    }
    for phone in &phones {
        let got = sms_center::upstream_has(&phone[1..], 2);
        assert_eq!(got.len(), 2, "{phone} got {got:#?}");
    }
    // The SMS center did refuse some for now, and the session sent them
    // again after a pause.
    let page = daemon.scrape();
    let retried: u64 = page
        .lines()
        .find_map(|line| line.strip_prefix("dialhound_sms_retries_total{provider=\"jasmin\"} "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0);
    assert!(retried > 0, "no submit was refused for now:\n{page}");
}

/// Waits until the metrics page has `line`.
fn wait_for_metric(daemon: &Daemon, line: &str) {
    poll(daemon, WAIT, || {
        let page = daemon.scrape();
        if page.lines().any(|l| l == line) {
            Ok(())
        } else {
            Err(format!("no {line:?} on\n{page}"))
        }
    })
}

#[test]
fn an_sms_center_killed_and_restarted_mid_campaign_loses_no_sms_and_sends_none_twice() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = numbers(4, 3, 0);
    let during = numbers(5, 3, 0);
    let (daemon, _sipp, work) = ringing_campaign("crash", SMPP, SMPP_USER, &before);
    wait_for_sms(&daemon, "crash", "the first texts delivered", |records| {
        records.len() == before.len() && records.iter().all(|r| r["status"] == "delivered")
    });

    // The SMS center dies; the link sees it and says so.
    let down = JasminDown::kill();
    wait_for_metric(
        &daemon,
        "dialhound_sms_provider_bound{provider=\"jasmin\"} 0",
    );

    // The campaign goes on: more customers arrive, their calls ring out,
    // and their texts wait in the store.
    let zone = dialhound::demo::afternoon_zone(Timestamp::now());
    let csv = customers_csv(work.path(), before.len(), &during, &zone);
    let imported = daemon.cli(&["import", csv.to_str().unwrap()]);
    assert_eq!(imported["result"]["imported"], during.len(), "{imported}");
    wait_for_sms(
        &daemon,
        "crash",
        "the texts of the outage written",
        |records| {
            records.len() == before.len() + during.len()
                && records
                    .iter()
                    .filter(|r| r["status"] != "delivered")
                    .all(|r| r["status"] == "queued")
        },
    );
    for phone in &during {
        assert!(sms_center::upstream_messages(&phone[1..]).is_empty());
    }

    // Back up: the link binds again and sends what waited.
    down.restart();
    let records = wait_for_sms(&daemon, "crash", "every SMS delivered", |records| {
        records.len() == before.len() + during.len()
            && records.iter().all(|r| r["status"] == "delivered")
    });
    for record in &records {
        assert_eq!(record["submissions"], 1, "{record}");
    }
    // Each number's two parts reached the upstream once.
    for phone in before.iter().chain(&during) {
        let got = sms_center::upstream_has(&phone[1..], 2);
        assert_eq!(got.len(), 2, "{phone} got {got:#?}");
    }
    wait_for_metric(
        &daemon,
        "dialhound_sms_provider_bound{provider=\"jasmin\"} 1",
    );
}

#[test]
fn a_campaign_fails_over_past_a_provider_that_refuses_the_bind_and_one_that_is_down() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let nowhere = free_port().to_string();
    // The campaign's first choice has the wrong password, its second
    // cannot be reached; the third works.
    let providers = [
        provider("wrong_account", SMPP, SMPP_USER, "wrongpw"),
        provider("unreachable", &nowhere, SMPP_USER, SMPP_PASSWORD),
        provider("jasmin", SMPP, SMPP_USER, SMPP_PASSWORD),
    ]
    .concat();
    let phones = numbers(6, 3, 0);
    let (daemon, _sipp, _work) = ringing_campaign_with(
        "failover",
        r#"sms_providers = ["wrong_account", "unreachable", "jasmin"]"#,
        &providers,
        &phones,
    );
    let records = wait_for_sms(&daemon, "failover", "every SMS delivered", |records| {
        records.len() == phones.len() && records.iter().all(|r| r["status"] == "delivered")
    });
    for record in &records {
        assert_eq!(record["provider"], "jasmin", "{record}");
        assert_eq!(record["submissions"], 1, "{record}");
    }
    for phone in &phones {
        let got = sms_center::upstream_has(&phone[1..], 2);
        assert_eq!(got.len(), 2, "{phone} got {got:#?}");
    }

    // The refused bind is an operator-visible error, and not retried at
    // once: the calls rang for two seconds before any SMS was written, in
    // which a link retrying after its usual half-second pause would have
    // tried again several times.
    let log = daemon.log();
    let refusals = log
        .lines()
        .filter(|line| {
            line.contains("ERROR")
                && line.contains("wrong_account")
                && line.contains("refused the bind")
        })
        .count();
    assert_eq!(refusals, 1, "{log}");
    let page = daemon.scrape();
    for down in ["wrong_account", "unreachable"] {
        let line = format!("dialhound_sms_provider_bound{{provider=\"{down}\"}} 0");
        assert!(page.lines().any(|l| l == line), "no {line:?} on\n{page}");
    }
}

/// An HTTP request to the link server; the status line and headers, and
/// the body.
fn http(at: std::net::SocketAddr, method: &str, path: &str, user_agent: &str) -> (String, String) {
    http_with(at, method, path, user_agent, "")
}

/// [`http`] with `extra` header lines (each ending `\r\n`).
fn http_with(
    at: std::net::SocketAddr,
    method: &str,
    path: &str,
    user_agent: &str,
    extra: &str,
) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(at).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: dh.example.cn\r\nUser-Agent: {user_agent}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// The test SMS center as the one provider, and tracked links served on
/// `links` as `dh.example.cn/TOKEN`.
fn jasmin_with_links(links: std::net::SocketAddr) -> String {
    format!(
        "{}\n[links]\nlisten = \"{links}\"\npublic = \"dh.example.cn\"\n",
        provider("jasmin", SMPP, SMPP_USER, SMPP_PASSWORD)
    )
}

fn location(head: &str) -> Option<&str> {
    head.lines().find_map(|line| {
        line.strip_prefix("location: ")
            .or_else(|| line.strip_prefix("Location: "))
    })
}

const PHONE_BROWSER: &str = "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36";

#[test]
fn a_tracked_link_redirects_to_the_target_with_the_customers_parameters_and_its_click_is_counted() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let links = free_port();
    let providers = jasmin_with_links(links);
    let phones = numbers(7, 2, 0);
    let (daemon, _sipp, _work) = ringing_campaign_with("links", "", &providers, &phones);
    let records = wait_for_sms(&daemon, "links", "every SMS delivered", |records| {
        records.len() == phones.len() && records.iter().all(|r| r["status"] == "delivered")
    });

    // Each text carries its own short link, whole in one part.
    let mut tokens = BTreeMap::new();
    for (n, phone) in phones.iter().enumerate() {
        let record = records
            .iter()
            .find(|r| r["customer"] == format!("S{n:03}"))
            .unwrap();
        let token = record["link"]["token"].as_str().unwrap().to_owned();
        let short = format!("dh.example.cn/{token}");
        let got =
            sms_center::upstream_has(&phone[1..], record["part_count"].as_u64().unwrap() as usize);
        assert!(
            got.iter()
                .any(|m| m["text"].as_str().unwrap().contains(&short)),
            "{short} not whole in one part of {got:#?}"
        );
        assert!(
            !got.iter()
                .any(|m| m["text"].as_str().unwrap().contains(LINK)),
            "{got:#?}"
        );
        tokens.insert(n, token);
    }
    assert_ne!(tokens[&0], tokens[&1]);

    // A link preview and a HEAD go on to the target but are not clicks.
    let (head, _) = http(
        links,
        "GET",
        &format!("/{}", tokens[&0]),
        "WhatsApp/2.23.20.0 A",
    );
    assert!(head.starts_with("HTTP/1.1 302"), "{head}");
    let (head, _) = http(links, "HEAD", &format!("/{}", tokens[&0]), PHONE_BROWSER);
    assert!(head.starts_with("HTTP/1.1 302"), "{head}");

    // A person opening it twice: two clicks, one visitor, and the
    // redirect carries the customer's parameters. Without `trust_proxy` an
    // `X-Forwarded-For` is the client's word, not its address.
    for forwarded in ["", "X-Forwarded-For: 203.0.113.9\r\n"] {
        let (head, _) = http_with(
            links,
            "GET",
            &format!("/{}", tokens[&0]),
            PHONE_BROWSER,
            forwarded,
        );
        assert!(head.starts_with("HTTP/1.1 302"), "{head}");
        assert_eq!(
            location(&head),
            Some(format!("{LINK}?customer=S000&campaign=links").as_str()),
            "{head}"
        );
    }
    // A token nobody was sent.
    let (head, body) = http(links, "GET", "/Zz9Zz9Zz", PHONE_BROWSER);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert_eq!(body, "no such link\n");

    let records = sms_records(&daemon, "links");
    let clicked = records.iter().find(|r| r["customer"] == "S000").unwrap();
    let clicks = clicked["clicks"].as_array().unwrap();
    assert_eq!(clicks.len(), 2, "{clicked:#}");
    assert_eq!(clicks[0]["visitor"], clicks[1]["visitor"]);
    assert_ne!(
        clicks[0]["visitor"], "127.0.0.1",
        "the address is kept only as a hash"
    );
    assert_eq!(clicks[0]["user_agent"], PHONE_BROWSER);
    let other = records.iter().find(|r| r["customer"] == "S001").unwrap();
    assert_eq!(other["clicks"].as_array().unwrap().len(), 0, "{other:#}");

    // The CSV export counts them.
    let csv = daemon.cli_text(&["sms", "--campaign", "links", "--csv"]);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row = lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .find(|row| row[column("customer")] == "S000")
        .unwrap();
    assert_eq!(row[column("link")], tokens[&0]);
    assert_eq!(row[column("clicks")], "2");
    assert_eq!(row[column("unique_clicks")], "1");

    let page = daemon.scrape();
    for line in [
        "dialhound_sms_link_opens_total{campaign=\"links\",kind=\"click\"} 2",
        "dialhound_sms_link_opens_total{campaign=\"links\",kind=\"preview\"} 2",
        "dialhound_sms_link_opens_total{campaign=\"\",kind=\"unknown\"} 1",
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} on\n{page}");
    }
}

#[test]
fn a_click_on_the_link_is_history_the_rules_read_at_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The first call's no-answer texts the link; opening it earns a second
    // call, by another rule, without waiting for any scan.
    let body = r#"
policy {
  at most 2 calls per day
}

rule first_call {
  when not customer.paid and history.attempts == 0
  on no_answer send sms "cart_link" within 10m
}

rule after_the_click {
  when not customer.paid and history.last_sms_clicked is set and history.attempts == 1
}

sms cart_link {
  text "Your cart is waiting: {link} Reply TD to stop"
}
"#;
    let links = free_port();
    let providers = jasmin_with_links(links);
    let phones = numbers(8, 2, 0);
    let (daemon, _sipp, _work) = ringing_campaign_of("clicks", body, "", &providers, &phones);
    let records = wait_for_sms(&daemon, "clicks", "both texts delivered", |records| {
        records.len() == phones.len() && records.iter().all(|r| r["status"] == "delivered")
    });
    let cdrs_by = |rule: &str| -> Vec<Value> {
        let cdrs = daemon.cli(&["cdr", "--campaign", "clicks"]);
        cdrs["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|cdr| cdr["rule"] == rule)
            .cloned()
            .collect()
    };
    assert_eq!(cdrs_by("first_call").len(), 2);
    assert!(cdrs_by("after_the_click").is_empty());

    let clicked = records.iter().find(|r| r["customer"] == "S000").unwrap();
    let token = clicked["link"]["token"].as_str().unwrap();
    let (head, _) = http(links, "GET", &format!("/{token}"), PHONE_BROWSER);
    assert!(head.starts_with("HTTP/1.1 302"), "{head}");

    let second = poll(&daemon, WAIT, || {
        let second = cdrs_by("after_the_click");
        if second.is_empty() {
            Err("the click did not bring a second call".to_owned())
        } else {
            Ok(second)
        }
    });
    assert_eq!(second.len(), 1, "{second:#?}");
    assert_eq!(second[0]["customer"], "S000", "{second:#?}");
}
