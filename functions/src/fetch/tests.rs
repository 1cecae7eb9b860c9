//! The fetch rule on URLs and addresses. Each URL is parsed the way the SDK call is read
//! ([`parse_url`]) and checked on that value, which is the value the HTTP client sends.

use super::*;

fn policy(allowed: &[&str], private: PrivateAddresses) -> FetchPolicy {
    FetchPolicy::new(allowed, private).unwrap()
}

/// What `fetch(raw)` is told: the parse error, the refusal, or where it goes (the host and
/// port the HTTP client connects to).
fn decide(policy: &FetchPolicy, raw: &str) -> Result<String, String> {
    let url = parse_url(raw).map_err(|error| format!("invalid: {error}"))?;
    policy.check(&url).map_err(|refused| refused.to_string())?;
    Ok(format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    ))
}

fn refused_because(policy: &FetchPolicy, raw: &str, why: &str) {
    match decide(policy, raw) {
        Err(message) => assert!(message.contains(why), "{raw}: {message:?} lacks {why:?}"),
        Ok(target) => panic!("{raw} goes to {target}, expected a refusal ({why})"),
    }
}

#[test]
fn hosts_match_exactly_or_by_subdomain() {
    let p = policy(&["api.example.com", "*.svc.local"], PrivateAddresses::Deny);
    assert_eq!(
        decide(&p, "https://api.example.com/v1?x=1"),
        Ok("api.example.com:443".into())
    );
    assert_eq!(
        decide(&p, "http://a.svc.local/"),
        Ok("a.svc.local:80".into())
    );
    assert_eq!(
        decide(&p, "http://a.b.svc.local/"),
        Ok("a.b.svc.local:80".into())
    );
    refused_because(&p, "http://svc.local/", "host not allowed");
    refused_because(&p, "http://evilsvc.local/", "host not allowed");
    refused_because(&p, "https://api.example.com.evil.net/", "host not allowed");
    refused_because(&p, "https://evil.net/?api.example.com", "host not allowed");
    refused_because(&p, "https://evil.net/#@api.example.com", "host not allowed");
}

#[test]
fn only_http_and_https() {
    let p = policy(&["api.example.com"], PrivateAddresses::Deny);
    refused_because(&p, "file:///etc/passwd", "scheme \"file\"");
    refused_because(&p, "ftp://api.example.com/", "scheme \"ftp\"");
    refused_because(&p, "ws://api.example.com/", "scheme \"ws\"");
    assert!(
        decide(&p, "api.example.com/x")
            .unwrap_err()
            .starts_with("invalid")
    );
}

#[test]
fn credentials_and_userinfo_tricks_are_refused() {
    let p = policy(&["allowed.test"], PrivateAddresses::Deny);
    refused_because(&p, "http://user:pw@allowed.test/", "credentials");
    refused_because(&p, "http://user@allowed.test/", "credentials");
    refused_because(&p, "http://127.0.0.1:8080@allowed.test/", "credentials");
    refused_because(&p, "http://allowed.test@127.0.0.1/", "credentials");
    refused_because(&p, "http://allowed.test:80@127.0.0.1:8080/", "credentials");
    // Empty credentials are no credentials: the URL is `http://allowed.test/`.
    assert_eq!(
        decide(&p, "http://:@allowed.test/"),
        Ok("allowed.test:80".into())
    );
}

#[test]
fn backslashes_end_the_authority_as_browsers_read_them() {
    let p = policy(&["allowed.test"], PrivateAddresses::Allow);
    // The old hand-written parser read allowed.test here; the HTTP client went to 127.0.0.1.
    refused_because(
        &p,
        "http://127.0.0.1:8080\\@allowed.test/a",
        "host not allowed",
    );
    refused_because(&p, "http://127.0.0.1\\\\@allowed.test/", "host not allowed");
    refused_because(&p, "http:\\\\127.0.0.1\\@allowed.test/", "host not allowed");
    assert_eq!(
        decide(&p, "http:\\\\allowed.test\\path"),
        Ok("allowed.test:80".into())
    );
}

#[test]
fn percent_encoded_and_idna_hosts_are_judged_after_normalisation() {
    let p = policy(&["allowed.test", "bücher.example"], PrivateAddresses::Deny);
    assert_eq!(
        decide(&p, "http://allowed%2Etest/"),
        Ok("allowed.test:80".into())
    );
    assert_eq!(
        decide(&p, "http://%61llowed.test/"),
        Ok("allowed.test:80".into())
    );
    assert_eq!(
        decide(&p, "http://ALLOWED.Test/"),
        Ok("allowed.test:80".into())
    );
    // Fullwidth letters and dot map to their ASCII forms (UTS 46).
    assert_eq!(
        decide(&p, "http://ａｌｌｏｗｅｄ．ｔｅｓｔ/"),
        Ok("allowed.test:80".into())
    );
    assert_eq!(
        decide(&p, "http://BÜCHER.example/"),
        Ok("xn--bcher-kva.example:80".into())
    );
    assert_eq!(
        decide(&p, "http://xn--bcher-kva.example/"),
        Ok("xn--bcher-kva.example:80".into())
    );
    // A Cyrillic "а" is another name.
    refused_because(&p, "http://\u{430}llowed.test/", "host not allowed");
    refused_because(&p, "http://%31%32%37.0.0.1/", "host not allowed");
    refused_because(&p, "http://allowed.test%00.evil/", "invalid");
}

#[test]
fn ipv4_in_any_notation_is_the_address_it_denotes() {
    let listed = policy(&["127.0.0.1"], PrivateAddresses::Deny);
    let unlisted = policy(&["allowed.test"], PrivateAddresses::Allow);
    for raw in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://017700000001/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://127.0.0.1./",
    ] {
        refused_because(&listed, raw, "address is private: 127.0.0.1");
        refused_because(&unlisted, raw, "host not allowed: 127.0.0.1");
    }
    let allowed = policy(&["127.0.0.1"], PrivateAddresses::Allow);
    assert_eq!(
        decide(&allowed, "http://0x7f.1:8080/"),
        Ok("127.0.0.1:8080".into())
    );
}

#[test]
fn ipv6_forms_of_private_ipv4_addresses_are_private() {
    let p = policy(
        &[
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[::127.0.0.1]",
            "[64:ff9b::a9fe:a9fe]",
            "[::1]",
            "[fd00:ec2::254]",
        ],
        PrivateAddresses::Deny,
    );
    for raw in [
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::169.254.169.254]/",
        "http://[::1]/",
        "http://[0:0:0:0:0:0:0:1]/",
        "http://[fd00:ec2::254]/",
    ] {
        refused_because(&p, raw, "address is private");
    }
    // The IPv6 form is its own host for the allow-list.
    let v4_only = policy(&["127.0.0.1"], PrivateAddresses::Allow);
    refused_because(&v4_only, "http://[::ffff:127.0.0.1]/", "host not allowed");
}

#[test]
fn a_trailing_dot_names_the_same_host() {
    let p = policy(&["allowed.test", "*.svc.local"], PrivateAddresses::Deny);
    assert_eq!(
        decide(&p, "http://allowed.test./x"),
        Ok("allowed.test.:80".into())
    );
    assert_eq!(
        decide(&p, "http://a.svc.local./"),
        Ok("a.svc.local.:80".into())
    );
    refused_because(&p, "http://allowed.test../", "host not allowed");
    let dotted = policy(&["allowed.test."], PrivateAddresses::Deny);
    assert_eq!(
        decide(&dotted, "http://allowed.test/"),
        Ok("allowed.test:80".into())
    );
}

#[test]
fn any_port_of_an_allowed_host_and_only_valid_ones() {
    let p = policy(&["allowed.test"], PrivateAddresses::Deny);
    assert_eq!(
        decide(&p, "http://allowed.test:8080/"),
        Ok("allowed.test:8080".into())
    );
    assert_eq!(
        decide(&p, "https://allowed.test:443/"),
        Ok("allowed.test:443".into())
    );
    assert!(
        decide(&p, "http://allowed.test:99999/")
            .unwrap_err()
            .starts_with("invalid")
    );
    assert!(
        decide(&p, "http://allowed.test:80:80/")
            .unwrap_err()
            .starts_with("invalid")
    );
    refused_because(&p, "http://127.0.0.1:80#@allowed.test/", "host not allowed");
}

#[test]
fn private_addresses_are_refused_unless_allowed() {
    let deny = policy(&[], PrivateAddresses::Deny);
    for address in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.100.100.200",
        "100.127.255.255",
        "192.0.0.192",
        "198.18.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "64:ff9b:1::1",
    ] {
        let ip: IpAddr = address.parse().unwrap();
        assert!(!is_public(ip), "{address} is not public");
        assert!(deny.check_address("h", ip).is_err(), "{address}");
    }
    for address in [
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.1",
        "192.0.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ] {
        assert!(is_public(address.parse().unwrap()), "{address} is public");
    }
    let allow = policy(&[], PrivateAddresses::Allow);
    assert_eq!(
        allow.check_address("h", "127.0.0.1".parse().unwrap()),
        Ok(())
    );
}

#[test]
fn resolved_addresses_keep_only_the_public_ones() {
    let p = policy(&["localhost"], PrivateAddresses::Deny);
    // A name on the allow-list passes the URL check; its addresses decide.
    assert_eq!(
        decide(&p, "http://localhost:8080/"),
        Ok("localhost:8080".into())
    );
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let public: SocketAddr = "93.184.215.14:0".parse().unwrap();
    let refusal = p.filter_addresses("localhost", [loopback]).unwrap_err();
    assert_eq!(
        refusal,
        FetchRefused::PrivateAddress {
            host: "localhost".into(),
            address: loopback.ip()
        }
    );
    assert!(refusal.to_string().contains("address is private"));
    assert_eq!(
        p.filter_addresses("mixed", [loopback, public]),
        Ok(vec![public])
    );
    let open = policy(&["localhost"], PrivateAddresses::Allow);
    assert_eq!(
        open.filter_addresses("localhost", [loopback]),
        Ok(vec![loopback])
    );
}

#[test]
fn every_redirect_hop_is_checked_and_chains_are_bounded() {
    let p = policy(&["allowed.test", "127.0.0.1"], PrivateAddresses::Deny);
    let next = |raw: &str| parse_url(raw).unwrap();
    assert_eq!(
        p.check_redirect(1, &next("https://allowed.test/next")),
        Ok(())
    );
    let to_loopback = p
        .check_redirect(1, &next("http://127.0.0.1:8080/admin"))
        .unwrap_err();
    assert!(
        matches!(&to_loopback, FetchRefused::Redirect { reason, .. } if matches!(**reason, FetchRefused::PrivateAddress { .. })),
        "{to_loopback:?}"
    );
    assert!(
        to_loopback
            .to_string()
            .starts_with("fetch refused: address is private")
    );
    assert!(matches!(
        p.check_redirect(1, &next("http://elsewhere.test/")),
        Err(FetchRefused::Redirect { .. })
    ));
    assert!(matches!(
        p.check_redirect(1, &next("http://u:p@allowed.test/")),
        Err(FetchRefused::Redirect { .. })
    ));
    assert_eq!(
        p.check_redirect(MAX_REDIRECTS, &next("http://allowed.test/")),
        Ok(())
    );
    assert_eq!(
        p.check_redirect(MAX_REDIRECTS + 1, &next("http://allowed.test/")),
        Err(FetchRefused::TooManyRedirects(MAX_REDIRECTS))
    );
}

#[test]
fn allow_list_entries_are_validated_and_normalised() {
    for bad in [
        "",
        "*.",
        "*",
        "a.*.com",
        "api.example.com:8080",
        "http://x",
        "a/b",
        "*.[::1]",
    ] {
        assert!(
            FetchPolicy::new(&[bad], PrivateAddresses::Deny).is_err(),
            "{bad:?} is not an entry"
        );
    }
    let p = policy(
        &["API.Example.COM", "*.Svc.Local", "[::1]"],
        PrivateAddresses::Allow,
    );
    assert_eq!(
        decide(&p, "http://api.example.com/"),
        Ok("api.example.com:80".into())
    );
    assert_eq!(
        decide(&p, "http://x.svc.local/"),
        Ok("x.svc.local:80".into())
    );
    assert_eq!(decide(&p, "http://[0::1]/"), Ok("[::1]:80".into()));
}

#[test]
fn refusals_quote_bounded_input() {
    let p = policy(&["allowed.test"], PrivateAddresses::Deny);
    let long = format!("http://{}.test/", "a".repeat(300));
    let message = decide(&p, &long).unwrap_err();
    assert!(message.len() < 400, "{message}");
}
