//! The deliberate differences from Python (SPEC §2), each shown against Python's own answer,
//! computed by `python3` at test time.

mod common;

use common::{gai_case, python};
use resolver::{encode_host, getaddrinfo, socket_addr, ErrorKind, Family, Hints, Transport};
use serde_json::json;

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
fn numeric_port_above_65535_is_an_error() {
    let services = ["70000", "65536", " 70000", "+65536", "4294967296", "-1"];
    let cases: Vec<_> = services
        .iter()
        .map(|s| {
            gai_case(
                Some("127.0.0.1"),
                Some(s),
                0,
                libc::SOCK_STREAM,
                0,
                libc::AI_NUMERICHOST,
            )
        })
        .collect();
    let expected = python(&cases);
    // glibc wraps modulo 65536 (70000 -> 4464) or treats the digits as a name.
    assert_eq!(expected[0]["ok"][0][4], json!(["127.0.0.1", 4464]));
    for (service, python) in services.iter().zip(&expected) {
        let err = getaddrinfo(Some("127.0.0.1"), Some(service), &numeric())
            .expect_err("port out of range");
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidPort,
            "{service:?}: python {python}"
        );
        assert_eq!(
            err.to_string(),
            format!("host \"127.0.0.1\", service {service:?}: port number must be 0-65535")
        );
    }
    // In range, leading blanks and a plus sign are numbers for glibc, as for Python.
    let found = getaddrinfo(Some("127.0.0.1"), Some(" +80"), &numeric()).expect("port 80");
    assert_eq!(found[0].address.port(), 80);
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
