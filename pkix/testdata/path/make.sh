#!/bin/sh
# Regenerates the certificates of pkix's path validator unit tests (OpenSSL 3). The private
# keys are thrown away: the tests only verify.
#   root (RSA 2048, self-signed, sha256WithRSAEncryption)
#   -> ica (P-384, signed by root with RSASSA-PSS/SHA-256, policy 1.3.6.1.4.1.99999.1)
#      -> leaf (Ed25519, signed by ica with ecdsa-with-SHA384, clientAuth, policy 1.3.6.1.4.1.99999.1)
#      -> leaf-sha1 (P-256, signed by ica with ecdsa-with-SHA1)
#   ica-crl.pem: ica's CRL (ecdsa-with-SHA384, nextUpdate 30 days on) revoking leaf for keyCompromise
set -eu
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/ext.cnf" <<'CNF'
[ica]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
certificatePolicies = 1.3.6.1.4.1.99999.1
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
certificatePolicies = 1.3.6.1.4.1.99999.1
subjectAltName = email:citizen@example.sa
CNF
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/root.key" 2>/dev/null
openssl req -new -x509 -key "$work/root.key" -subj "/C=SA/O=Hawiya Test/CN=Test Root" -days 36500 -sha256 -set_serial 1 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$work/ica.key"
openssl req -new -key "$work/ica.key" -subj "/C=SA/O=Hawiya Test/CN=Test Issuing CA" -out "$work/ica.csr"
openssl x509 -req -in "$work/ica.csr" -CA root.pem -CAkey "$work/root.key" -set_serial 2 -days 36000 \
  -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -sigopt rsa_mgf1_md:sha256 \
  -extfile "$work/ext.cnf" -extensions ica -out ica.pem
openssl genpkey -algorithm ED25519 -out "$work/leaf.key"
openssl req -new -key "$work/leaf.key" -subj "/C=SA/CN=Citizen Test" -out "$work/leaf.csr"
openssl x509 -req -in "$work/leaf.csr" -CA ica.pem -CAkey "$work/ica.key" -set_serial 3 -days 3650 -sha384 \
  -extfile "$work/ext.cnf" -extensions leaf -out leaf.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/sha1.key"
openssl req -new -key "$work/sha1.key" -subj "/C=SA/CN=Citizen SHA-1" -out "$work/sha1.csr"
openssl x509 -req -in "$work/sha1.csr" -CA ica.pem -CAkey "$work/ica.key" -set_serial 4 -days 3650 -sha1 \
  -extfile "$work/ext.cnf" -extensions leaf -out leaf-sha1.pem
printf '' > "$work/index.txt"
echo 01 > "$work/crlnumber"
cat > "$work/ca.cnf" <<CNF
[ca]
default_ca = ica
[ica]
database = $work/index.txt
crlnumber = $work/crlnumber
default_md = sha384
default_crl_days = 30
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
CNF
openssl ca -config "$work/ca.cnf" -keyfile "$work/ica.key" -cert ica.pem -revoke leaf.pem -crl_reason keyCompromise 2>/dev/null
openssl ca -config "$work/ca.cnf" -keyfile "$work/ica.key" -cert ica.pem -gencrl -out ica-crl.pem 2>/dev/null
