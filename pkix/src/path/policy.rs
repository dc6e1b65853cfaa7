//! Certificate policy processing (RFC 5280 §6.1.2-6.1.5): the valid policy tree, kept as its
//! leaves (each remembers the authority-domain policy at its root), explicit policy, policy
//! mappings and inhibit anyPolicy. Policy qualifiers are not processed.

use der::asn1::ObjectIdentifier;

use super::cert::{ANY_POLICY, ParsedCert};

/// The caller's policy inputs (RFC 5280 §6.1.1 c, e-g).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyOptions {
    /// user-initial-policy-set; empty means anyPolicy.
    pub initial_policy_set: Vec<ObjectIdentifier>,
    /// initial-explicit-policy: the path must be valid for at least one policy.
    pub initial_explicit_policy: bool,
    /// initial-policy-mapping-inhibit.
    pub initial_policy_mapping_inhibit: bool,
    /// initial-any-policy-inhibit.
    pub initial_any_policy_inhibit: bool,
}

#[derive(Clone, Debug)]
struct Node {
    /// The first policy below anyPolicy on the way from the root: the authority-domain policy.
    authority: ObjectIdentifier,
    valid: ObjectIdentifier,
    expected: Vec<ObjectIdentifier>,
}

/// The policy state while the path is processed from the trust anchor down.
#[derive(Debug)]
pub(crate) struct PolicyState {
    tree: Option<Vec<Node>>,
    explicit_policy: u32,
    policy_mapping: u32,
    inhibit_any_policy: u32,
}

impl PolicyState {
    /// The initial state for a path of `n` certificates below the trust anchor.
    pub fn new(options: &PolicyOptions, n: u32) -> PolicyState {
        PolicyState {
            tree: Some(vec![Node { authority: ANY_POLICY, valid: ANY_POLICY, expected: vec![ANY_POLICY] }]),
            explicit_policy: if options.initial_explicit_policy { 0 } else { n + 1 },
            policy_mapping: if options.initial_policy_mapping_inhibit { 0 } else { n + 1 },
            inhibit_any_policy: if options.initial_any_policy_inhibit { 0 } else { n + 1 },
        }
    }

    /// Processes certificate `cert`, `last` when it is the end-entity (§6.1.3 d-f, §6.1.4 a-j).
    pub fn process(&mut self, cert: &ParsedCert, last: bool) -> Result<(), String> {
        let any_allowed = self.inhibit_any_policy > 0 || (!last && cert.self_issued);
        match (&cert.policies, self.tree.take()) {
            (Some(policies), Some(leaves)) => {
                let mut next = Vec::new();
                for policy in policies.iter().filter(|p| **p != ANY_POLICY) {
                    let before = next.len();
                    for parent in leaves.iter().filter(|n| n.expected.contains(policy)) {
                        next.push(child(parent, *policy));
                    }
                    if next.len() == before
                        && let Some(parent) = leaves.iter().find(|n| n.valid == ANY_POLICY)
                    {
                        next.push(child(parent, *policy));
                    }
                }
                if any_allowed && policies.contains(&ANY_POLICY) {
                    for parent in &leaves {
                        for expected in &parent.expected {
                            let taken = policies.contains(expected) && *expected != ANY_POLICY;
                            if !taken && !next.iter().any(|n| n.valid == *expected && n.authority == authority_of(parent, *expected)) {
                                next.push(child(parent, *expected));
                            }
                        }
                    }
                }
                self.tree = if next.is_empty() { None } else { Some(next) };
            }
            _ => self.tree = None,
        }
        let none_valid = "no certificate policy is valid for the path, and an explicit policy is required (RFC 5280 §6.1.3 f)";
        if !last {
            if self.explicit_policy == 0 && self.tree.is_none() {
                return Err(none_valid.into());
            }
            self.prepare_next(cert)?;
            return Ok(());
        } else {
            if self.explicit_policy > 0 {
                self.explicit_policy -= 1;
            }
            if cert.policy_constraints.as_ref().and_then(|pc| pc.require_explicit_policy) == Some(0) {
                self.explicit_policy = 0;
            }
        }
        if self.explicit_policy == 0 && self.tree.is_none() {
            return Err(none_valid.into());
        }
        Ok(())
    }

    fn prepare_next(&mut self, cert: &ParsedCert) -> Result<(), String> {
        if let Some(mappings) = &cert.policy_mappings {
            if mappings.iter().any(|(i, s)| *i == ANY_POLICY || *s == ANY_POLICY) {
                return Err("policyMappings maps to or from anyPolicy (RFC 5280 §6.1.4 a)".into());
            }
            if let Some(leaves) = self.tree.take() {
                let mut next: Vec<Node> = Vec::new();
                let mut issuer_domains: Vec<ObjectIdentifier> = mappings.iter().map(|(i, _)| *i).collect();
                issuer_domains.dedup();
                for node in leaves {
                    if issuer_domains.contains(&node.valid) {
                        if self.policy_mapping > 0 {
                            let expected = mappings.iter().filter(|(i, _)| *i == node.valid).map(|(_, s)| *s).collect();
                            next.push(Node { expected, ..node });
                        }
                    } else {
                        next.push(node);
                    }
                }
                if self.policy_mapping > 0
                    && let Some(any) = next.iter().find(|n| n.valid == ANY_POLICY).cloned()
                {
                    for issuer in &issuer_domains {
                        if !next.iter().any(|n| n.valid == *issuer) {
                            let expected = mappings.iter().filter(|(i, _)| i == issuer).map(|(_, s)| *s).collect();
                            next.push(Node { authority: authority_of(&any, *issuer), valid: *issuer, expected });
                        }
                    }
                }
                self.tree = if next.is_empty() { None } else { Some(next) };
            }
        }
        if !cert.self_issued {
            self.explicit_policy = self.explicit_policy.saturating_sub(1);
            self.policy_mapping = self.policy_mapping.saturating_sub(1);
            self.inhibit_any_policy = self.inhibit_any_policy.saturating_sub(1);
        }
        if let Some(pc) = &cert.policy_constraints {
            if let Some(r) = pc.require_explicit_policy {
                self.explicit_policy = self.explicit_policy.min(r);
            }
            if let Some(m) = pc.inhibit_policy_mapping {
                self.policy_mapping = self.policy_mapping.min(m);
            }
        }
        if let Some(skip) = cert.inhibit_any_policy {
            self.inhibit_any_policy = self.inhibit_any_policy.min(skip);
        }
        Ok(())
    }

    /// The valid policy set after the end-entity, intersected with the user-initial-policy-set
    /// (§6.1.5 g); anyPolicy in the result means every policy.
    pub fn finish(self, options: &PolicyOptions) -> Result<Vec<ObjectIdentifier>, String> {
        let leaves = self.tree.unwrap_or_default();
        let mut set: Vec<ObjectIdentifier> = Vec::new();
        let initial_any = options.initial_policy_set.is_empty() || options.initial_policy_set.contains(&ANY_POLICY);
        for node in &leaves {
            if initial_any {
                push_unique(&mut set, node.authority);
            } else if node.authority == ANY_POLICY {
                for p in &options.initial_policy_set {
                    push_unique(&mut set, *p);
                }
            } else if options.initial_policy_set.contains(&node.authority) {
                push_unique(&mut set, node.authority);
            }
        }
        if self.explicit_policy == 0 && set.is_empty() {
            return Err("no certificate policy of the path is in the acceptable set, and an explicit policy is required (RFC 5280 §6.1.5 g)".into());
        }
        Ok(set)
    }
}

fn authority_of(parent: &Node, policy: ObjectIdentifier) -> ObjectIdentifier {
    if parent.authority == ANY_POLICY { policy } else { parent.authority }
}

fn child(parent: &Node, policy: ObjectIdentifier) -> Node {
    Node { authority: authority_of(parent, policy), valid: policy, expected: vec![policy] }
}

fn push_unique(set: &mut Vec<ObjectIdentifier>, oid: ObjectIdentifier) {
    if !set.contains(&oid) {
        set.push(oid);
    }
}

#[cfg(test)]
mod tests {
    use x509_cert::ext::pkix::PolicyConstraints;

    use super::*;

    const A: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.10");
    const B: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.11");

    /// A certificate of the test chain with the policy extensions replaced.
    fn cert(policies: Option<Vec<ObjectIdentifier>>, mappings: Option<Vec<(ObjectIdentifier, ObjectIdentifier)>>) -> ParsedCert {
        let (_, der) = der::pem::decode_vec(include_str!("../../testdata/path/ica.pem").as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut cert = ParsedCert::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
        cert.policies = policies;
        cert.policy_mappings = mappings;
        cert.policy_constraints = None;
        cert.inhibit_any_policy = None;
        cert
    }

    fn run(options: &PolicyOptions, path: &[ParsedCert]) -> Result<Vec<ObjectIdentifier>, String> {
        let mut state = PolicyState::new(options, path.len() as u32);
        for (i, cert) in path.iter().enumerate() {
            state.process(cert, i == path.len() - 1)?;
        }
        state.finish(options)
    }

    fn explicit(set: Vec<ObjectIdentifier>) -> PolicyOptions {
        PolicyOptions { initial_policy_set: set, initial_explicit_policy: true, ..PolicyOptions::default() }
    }

    #[test]
    fn a_mapping_carries_the_issuer_domain_policy() {
        let path = [cert(Some(vec![A]), Some(vec![(A, B)])), cert(Some(vec![B]), None)];
        assert_eq!(run(&explicit(vec![A]), &path), Ok(vec![A]));
        assert!(run(&explicit(vec![B]), &path).is_err(), "B is the subject-domain name of A, not an authority-domain policy");
        let inhibited = PolicyOptions { initial_policy_mapping_inhibit: true, ..explicit(vec![]) };
        assert!(run(&inhibited, &path).is_err(), "with mapping inhibited, the mapped node is deleted");
        assert_eq!(run(&PolicyOptions { initial_explicit_policy: false, ..inhibited }, &path), Ok(vec![]));
    }

    #[test]
    fn any_policy_counts_only_until_inhibited() {
        let path = [cert(Some(vec![ANY_POLICY]), None), cert(Some(vec![A]), None)];
        assert_eq!(run(&explicit(vec![]), &path), Ok(vec![A]));
        let inhibited = PolicyOptions { initial_any_policy_inhibit: true, ..explicit(vec![]) };
        assert!(run(&inhibited, &path).is_err());
        let leaf_any = [cert(Some(vec![A]), None), cert(Some(vec![ANY_POLICY]), None)];
        assert_eq!(run(&explicit(vec![]), &leaf_any), Ok(vec![A]), "anyPolicy in the leaf keeps the expected policy");
    }

    #[test]
    fn require_explicit_policy_in_a_ca_binds_the_path_below() {
        let mut ca = cert(Some(vec![A]), None);
        ca.policy_constraints = Some(PolicyConstraints { require_explicit_policy: Some(0), inhibit_policy_mapping: None });
        let error = run(&PolicyOptions::default(), &[ca, cert(None, None)]);
        assert!(error.as_ref().is_err_and(|e| e.contains("explicit policy")), "{error:?}");
        assert_eq!(run(&PolicyOptions::default(), &[cert(Some(vec![A]), None), cert(None, None)]), Ok(vec![]));
    }
}
