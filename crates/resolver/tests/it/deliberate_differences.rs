//! The deliberate differences from Python (listed in the crate docs), each shown against Python's own answer,
//! computed by `python3` at test time.

use crate::common;

use common::{gai_case, python};
use resolver::{encode_host, getaddrinfo, socket_addr, ErrorKind, Family, Hints, Transport};
use serde_json::{json, Value};

fn numeric() -> Hints {
    Hints {
        socktype: libc::SOCK_STREAM,
        flags: libc::AI_NUMERICHOST,
        ..Hints::default()
    }
}

#[test]
fn nul_byte_in_host_is_an_error() {
    let host = "127.0.0.1\0junk";
    let expected = python(&[gai_case(
        Some(host),
        Some("80"),
        0,
        libc::SOCK_STREAM,
        0,
        libc::AI_NUMERICHOST,
    )]);
    // Python cuts the string at the NUL and resolves "127.0.0.1".
    assert_eq!(expected[0]["ok"][0][4], json!(["127.0.0.1", 80]));
    let err = getaddrinfo(Some(host), Some("80"), &numeric()).expect_err("NUL byte");
    assert_eq!(err.kind(), ErrorKind::NulByte);
    assert!(
        err.to_string().starts_with(r#"host "127.0.0.1\0junk""#),
        "{err}"
    );
    let err = socket_addr(host, "80", Family::Any, Transport::Tcp).expect_err("NUL byte");
    assert_eq!(err.kind(), ErrorKind::NulByte);
}

#[test]
fn nul_byte_in_service_is_an_error() {
    let expected = python(&[gai_case(
        Some("127.0.0.1"),
        Some("80\0junk"),
        0,
        libc::SOCK_STREAM,
        0,
        libc::AI_NUMERICHOST,
    )]);
    assert_eq!(expected[0]["ok"][0][4], json!(["127.0.0.1", 80]));
    let err = getaddrinfo(Some("127.0.0.1"), Some("80\0junk"), &numeric()).expect_err("NUL");
    assert_eq!(err.kind(), ErrorKind::NulByte);
    assert!(err.to_string().contains(r#"service "80\0junk""#), "{err}");
    let err = socket_addr("127.0.0.1", "80\0", Family::Any, Transport::Tcp).expect_err("NUL");
    assert_eq!(err.kind(), ErrorKind::NulByte);
}

#[test]
fn every_service_outside_0_to_65535_is_eai_service() {
    // Python's answer is EAI_SERVICE for negative numbers and numbers too large for strtoul;
    // glibc wraps 65536 to 2^64 - 1 modulo 65536, which we refuse with the same error.
    let python_refuses = [
        "-1",
        " -1",
        "-65535",
        "-65536",
        "99999999999999999999",
        "-99999999999999999999",
    ];
    let python_wraps = ["70000", "65536", " 70000", "+65536", "4294967296"];
    let services: Vec<&str> = python_refuses
        .iter()
        .chain(&python_wraps)
        .copied()
        .collect();
    let mut cases = Vec::new();
    for service in &services {
        for (host, socktype, flags) in [
            (Some("127.0.0.1"), libc::SOCK_STREAM, libc::AI_NUMERICHOST),
            (Some("127.0.0.1"), libc::SOCK_DGRAM, libc::AI_NUMERICSERV),
            (None, 0, libc::AI_PASSIVE),
        ] {
            cases.push(gai_case(host, Some(service), 0, socktype, 0, flags));
        }
    }
    let expected = python(&cases);
    for (case, python) in cases.iter().zip(&expected) {
        let service = case["service"].as_str().expect("service");
        let host = case["host"].as_str();
        let hints = Hints {
            socktype: i32::try_from(case["type"].as_i64().expect("type")).expect("i32"),
            flags: i32::try_from(case["flags"].as_i64().expect("flags")).expect("i32"),
            ..Hints::default()
        };
        let err = getaddrinfo(host, Some(service), &hints).expect_err("port out of range");
        assert_eq!(err.eai_code(), Some(libc::EAI_SERVICE), "{case}: {err}");
        if python_refuses.contains(&service) {
            // Exactly Python's error: number and message.
            assert_eq!(python["gaierror"], json!(err.eai_code()), "{case}");
            assert_eq!(python["message"], json!(err.reason()), "{case}");
        } else {
            // The deliberate difference: Python wraps (70000 -> 4464).
            assert!(python["ok"].is_array(), "{case}: python {python}");
            assert_eq!(python["gaierror"], Value::Null, "{case}: python {python}");
        }
        let subject = match host {
            Some(h) => format!("host {h:?}, service {service:?}"),
            None => format!("service {service:?}"),
        };
        assert_eq!(
            err.to_string(),
            format!("{subject}: [Errno -8] Servname not supported for ai_socktype")
        );
    }
    // Python wraps 70000 to 4464.
    let wrapped = &expected[services.iter().position(|s| *s == "70000").expect("70000") * 3];
    assert_eq!(wrapped["ok"][0][4], json!(["127.0.0.1", 4464]));
    // In range, leading blanks and a plus sign are numbers for glibc, as for Python.
    let found = getaddrinfo(Some("127.0.0.1"), Some(" +80"), &numeric()).expect("port 80");
    assert_eq!(found[0].address.port(), 80);
    // -0 is 0, in range, for glibc and for us.
    let found = getaddrinfo(Some("127.0.0.1"), Some("-0"), &numeric()).expect("port 0");
    assert_eq!(found[0].address.port(), 0);
}

#[test]
fn socket_addr_refuses_every_port_outside_0_to_65535() {
    // As Python's bind (OverflowError: port must be 0-65535), and as check_port, which the
    // binaries' --port flags use.
    for port in ["-1", " -1", "70000", "65536", "99999999999999999999", ""] {
        let err = socket_addr("127.0.0.1", port, Family::Any, Transport::Tcp).expect_err(port);
        assert_eq!(err.kind(), ErrorKind::InvalidPort, "{port:?}: {err}");
        assert_eq!(err.code(), None, "{port:?}");
        assert!(resolver::check_port(port).is_err(), "{port:?}");
    }
}

#[test]
fn non_ascii_names_use_uts46() {
    let names = ["bücher.example", "faß.de", "σας.gr", "日本語.jp"];
    let cases: Vec<_> = names
        .iter()
        .map(|h| json!({"op": "idna", "host": h}))
        .collect();
    let expected = python(&cases);
    // Where IDNA 2003 and UTS #46 agree, so do we.
    assert_eq!(expected[0]["ok"], "xn--bcher-kva.example");
    assert_eq!(
        encode_host(names[0]).expect("idna"),
        "xn--bcher-kva.example"
    );
    assert_eq!(
        encode_host(names[3]).expect("idna"),
        expected[3]["ok"].as_str().expect("python encodes it")
    );
    // Where they differ: IDNA 2003 maps ß to ss and final sigma to sigma; UTS #46 keeps both.
    assert_eq!(expected[1]["ok"], "fass.de");
    assert_eq!(encode_host("faß.de").expect("idna"), "xn--fa-hia.de");
    assert_ne!(
        encode_host(names[2]).expect("idna"),
        expected[2]["ok"].as_str().expect("python encodes it")
    );
    // The encoded name is what reaches libc (AI_NUMERICHOST: refused without DNS).
    let err = getaddrinfo(Some("bücher.example"), None, &numeric()).expect_err("not numeric");
    assert_eq!(err.eai_code(), Some(libc::EAI_NONAME));
    assert!(
        err.to_string().starts_with(r#"host "bücher.example""#),
        "{err}"
    );
}

#[test]
fn socket_address_forms_python_lacks() {
    // The integer form (Python 3 refuses an int host) and a kept IPv6 scope.
    let a = socket_addr("2130706433", "80", Family::V4, Transport::Tcp).expect("integer form");
    assert_eq!(a.to_string(), "127.0.0.1:80");
    let err = socket_addr("4294967296", "80", Family::V4, Transport::Tcp).expect_err("too big");
    assert_eq!(err.kind(), ErrorKind::InvalidHost);
    let lo = std::ffi::CString::new("lo").expect("name");
    // SAFETY: if_nametoindex reads a NUL-terminated string and returns 0 when there is none.
    let lo_index = unsafe { libc::if_nametoindex(lo.as_ptr()) };
    let a = socket_addr("fe80::1%lo", "80", Family::Any, Transport::Udp).expect("scoped");
    match a {
        std::net::SocketAddr::V6(a) => assert_eq!(a.scope_id(), lo_index),
        other => panic!("not IPv6: {other}"),
    }
    let err = socket_addr("<broadcast>", "80", Family::V6, Transport::Udp).expect_err("v4 only");
    assert_eq!(err.kind(), ErrorKind::FamilyMismatch);
}

#[test]
fn neither_host_nor_service_is_refused_like_python() {
    let expected = python(&[gai_case(None, None, 0, 0, 0, 0)]);
    let err = getaddrinfo(None, None, &Hints::default()).expect_err("nothing to resolve");
    assert_eq!(expected[0]["gaierror"], json!(err.eai_code()));
    assert_eq!(expected[0]["message"], json!(err.reason()));
}
