//! Which instance a request addresses, read from its `Host`: `{instance}-api.{domain}` for the
//! API, `{instance}-iframe.{domain}` for the Connect page, any other name is a bare host.

use std::net::IpAddr;

use bankgate_core::InstanceName;

/// What the `Host` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// `localhost`, an IP, or a name that names no instance: the API takes the instance from
    /// the customerId, the Connect pages from `?instance=`. (`{instance}.{domain}` for an
    /// existing instance is refused by `routing::canonicalize`; see [`suffixless_instance`].)
    Bare,
    /// `{instance}-api.{domain}`
    Api(InstanceName),
    /// `{instance}-iframe.{domain}`
    Iframe(InstanceName),
    /// Looks like an instance host but is built wrong (`toolbox.api.…`, `api-toolbox.…`).
    WrongShape(String),
}

/// Reads a `Host` header value (with or without port).
pub fn classify(host: Option<&str>) -> HostKind {
    let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
        return HostKind::Bare;
    };
    let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() || name.starts_with('[') {
        return HostKind::Bare;
    }
    let mut labels = name.split('.');
    let first = labels.next().unwrap_or_default();
    let rest: Vec<&str> = labels.collect();
    if rest.is_empty() {
        return HostKind::Bare;
    }
    for (suffix, make) in [
        ("-api", HostKind::Api as fn(InstanceName) -> HostKind),
        ("-iframe", HostKind::Iframe as fn(InstanceName) -> HostKind),
    ] {
        if let Some(instance) = first.strip_suffix(suffix) {
            return match instance.parse::<InstanceName>() {
                Ok(instance) => make(instance),
                Err(_) => HostKind::WrongShape(name),
            };
        }
    }
    let misplaced = first.starts_with("api-")
        || first.starts_with("iframe-")
        || first == "api"
        || first == "iframe"
        || rest.first().is_some_and(|l| *l == "api" || *l == "iframe");
    if misplaced {
        HostKind::WrongShape(name)
    } else {
        HostKind::Bare
    }
}

/// A bare host shaped `{name}.{domain}` whose first label could be an instance name and whose
/// domain is not `localhost`: the instance and the domain, for checking whether `-api` (or
/// `-iframe`) was left out (docs/flinks-wire.md, "Hosts and URLs").
pub fn suffixless_instance(host: Option<&str>) -> Option<(InstanceName, String)> {
    let host = host.map(str::trim).filter(|h| !h.is_empty())?;
    if classify(Some(host)) != HostKind::Bare {
        return None;
    }
    let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() || name.starts_with('[') {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    if rest.is_empty() || rest == "localhost" {
        return None;
    }
    Some((first.parse().ok()?, rest.to_owned()))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [::1]:8080
        return host
            .split(']')
            .next()
            .map_or(host, |h| h.trim_start_matches('['));
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(name: &str) -> HostKind {
        HostKind::Api(name.parse().unwrap())
    }

    #[test]
    fn instance_hosts_on_any_domain() {
        assert_eq!(classify(Some("toolbox-api.localhost:8080")), api("toolbox"));
        assert_eq!(classify(Some("toolbox-api.private.fin.ag")), api("toolbox"));
        assert_eq!(classify(Some("acme-ca-api.example.test")), api("acme-ca"));
        assert_eq!(
            classify(Some("Toolbox-IFRAME.localhost")),
            HostKind::Iframe("toolbox".parse().unwrap())
        );
    }

    #[test]
    fn bare_hosts() {
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "bankgate.internal",
        ] {
            assert_eq!(classify(Some(host)), HostKind::Bare, "{host}");
        }
        assert_eq!(classify(None), HostKind::Bare);
    }

    #[test]
    fn suffixless_instance_hosts() {
        let (instance, rest) = suffixless_instance(Some("Toolbox.private.fin.ag:443")).unwrap();
        assert_eq!(
            (instance.as_str(), rest.as_str()),
            ("toolbox", "private.fin.ag")
        );
        for host in [
            "toolbox.localhost",
            "localhost",
            "127.0.0.1",
            "toolbox-api.private.fin.ag",
            "api-toolbox.private.fin.ag",
            "toolbox",
        ] {
            assert_eq!(suffixless_instance(Some(host)), None, "{host}");
        }
    }

    #[test]
    fn wrong_shapes() {
        for host in [
            "toolbox.api.private.fin.ag",
            "api-toolbox.private.fin.ag",
            "-api.localhost",
            "api.toolbox.localhost",
            "a_b-api.localhost",
        ] {
            assert!(
                matches!(classify(Some(host)), HostKind::WrongShape(_)),
                "{host}"
            );
        }
    }
}
