#!/usr/bin/env bash
# Make a CA, a Redis server certificate and a client certificate for taskline.
# Run with --help for usage. Needs bash and openssl (1.1.1 or 3.x).
set -euo pipefail

PROG=$(basename "$0")

usage() {
  cat <<EOF
Usage: $PROG [options]

Makes a CA (ca.crt, and its key ca-private/ca.key), a server certificate (server.crt,
server.key) and a client certificate (client.crt, client.key). Key files are written with
mode 600. The CA key goes into its own directory (mode 700), never beside the files servers
and clients mount: only the machine that signs certificates needs it.
Existing files are never overwritten unless --force is given.

Options:
  --out DIR             output directory (default: certs/dev, created if missing)
  --ca-dir DIR          where a new CA's private key goes (default: OUT/ca-private)
  --days N              validity in days (default: 365)
  --key-type rsa|ec     rsa = RSA 2048 (default), ec = ECDSA P-256
  --server-cn NAME      server certificate common name (default: localhost)
  --client-cn NAME      client certificate common name (default: taskline-client)
  --san DNS:name|IP:a   add a subjectAltName to the server certificate (repeatable)
  --no-default-sans     drop the default SANs; only the --san values are used
                        (defaults: DNS:localhost IP:127.0.0.1 IP:::1 DNS:redis-broker
                         DNS:redis-backend DNS:broker DNS:backend)
  --ca-cert FILE        sign with this existing CA certificate instead of making a CA
  --ca-key FILE         the existing CA's private key (required with --ca-cert)
  --server-only         make no client certificate
  --client-only         make no server certificate
  --self-signed         make only a server certificate signed by its own key (no CA);
                        for tests of "unknown issuer"
  --expired             make the server certificate already expired (for tests)
  --prefix NAME         name output files NAME-ca.crt, NAME-server.crt, ... (for rotation:
                        issue new certificates beside the old ones)
  --force               overwrite existing output files
  -h, --help            show this help

Examples:
  $PROG                                         # dev certificates in certs/dev
  $PROG --out /srv/tls --san DNS:redis.internal --key-type ec
  $PROG --out certs/dev --ca-cert certs/dev/ca.crt --ca-key certs/dev/ca-private/ca.key --prefix next
EOF
}

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value (see --help)"
}

OUT=certs/dev
CA_DIR=""
DAYS=365
KEY_TYPE=rsa
SERVER_CN=localhost
CLIENT_CN=taskline-client
DEFAULT_SANS=(DNS:localhost IP:127.0.0.1 IP:::1 DNS:redis-broker DNS:redis-backend DNS:broker DNS:backend)
EXTRA_SANS=()
USE_DEFAULT_SANS=1
CA_CERT=""
CA_KEY=""
MAKE_SERVER=1
MAKE_CLIENT=1
SELF_SIGNED=0
EXPIRED=0
PREFIX=""
FORCE=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    --ca-dir) need_value "$@"; CA_DIR=$2; shift 2 ;;
    --days) need_value "$@"; DAYS=$2; shift 2 ;;
    --key-type) need_value "$@"; KEY_TYPE=$2; shift 2 ;;
    --server-cn) need_value "$@"; SERVER_CN=$2; shift 2 ;;
    --client-cn) need_value "$@"; CLIENT_CN=$2; shift 2 ;;
    --san) need_value "$@"; EXTRA_SANS+=("$2"); shift 2 ;;
    --no-default-sans) USE_DEFAULT_SANS=0; shift ;;
    --ca-cert) need_value "$@"; CA_CERT=$2; shift 2 ;;
    --ca-key) need_value "$@"; CA_KEY=$2; shift 2 ;;
    --server-only) MAKE_CLIENT=0; shift ;;
    --client-only) MAKE_SERVER=0; shift ;;
    --self-signed) SELF_SIGNED=1; shift ;;
    --expired) EXPIRED=1; shift ;;
    --prefix) need_value "$@"; PREFIX="$2-"; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

# ---- validate -------------------------------------------------------------------------------
[[ "$DAYS" =~ ^[1-9][0-9]*$ ]] || die "--days must be a positive whole number, got '$DAYS'"
case "$KEY_TYPE" in rsa|ec) ;; *) die "--key-type must be 'rsa' or 'ec', got '$KEY_TYPE'" ;; esac
[[ $MAKE_SERVER -eq 1 || $MAKE_CLIENT -eq 1 ]] || die "--server-only and --client-only together make nothing"
if [[ -n "$CA_CERT" || -n "$CA_KEY" ]]; then
  [[ -n "$CA_CERT" && -n "$CA_KEY" ]] || die "--ca-cert and --ca-key must be given together"
  [[ -r "$CA_CERT" ]] || die "cannot read CA certificate '$CA_CERT'"
  [[ -r "$CA_KEY" ]] || die "cannot read CA key '$CA_KEY'"
  [[ $SELF_SIGNED -eq 0 ]] || die "--self-signed cannot be combined with --ca-cert"
fi
if [[ $SELF_SIGNED -eq 1 ]]; then
  [[ $MAKE_SERVER -eq 1 ]] || die "--self-signed makes a server certificate; drop --client-only"
  MAKE_CLIENT=0
fi
[[ "$PREFIX" != */* ]] || die "--prefix must be a file name prefix, not a path"

SANS=()
[[ $USE_DEFAULT_SANS -eq 1 ]] && SANS+=("${DEFAULT_SANS[@]}")
SANS+=("${EXTRA_SANS[@]+"${EXTRA_SANS[@]}"}")
for san in "${SANS[@]+"${SANS[@]}"}"; do
  [[ "$san" =~ ^(DNS:[A-Za-z0-9*.-]+|IP:[0-9A-Fa-f:.]+)$ ]] \
    || die "bad --san '$san': use DNS:name or IP:address"
done
if [[ $MAKE_SERVER -eq 1 && ${#SANS[@]} -eq 0 ]]; then
  die "the server certificate needs at least one SAN: give --san or drop --no-default-sans"
fi
SAN_LIST=$(IFS=,; echo "${SANS[*]+"${SANS[*]}"}")

# ---- plan the output files and refuse to overwrite ------------------------------------------
MAKE_CA=0
[[ -z "$CA_CERT" && $SELF_SIGNED -eq 0 ]] && MAKE_CA=1
CA_DIR=${CA_DIR:-$OUT/ca-private}
OUTPUTS=()
[[ $MAKE_CA -eq 1 ]] && OUTPUTS+=(ca.crt)
[[ $MAKE_SERVER -eq 1 ]] && OUTPUTS+=(server.crt server.key)
[[ $MAKE_CLIENT -eq 1 ]] && OUTPUTS+=(client.crt client.key)
# where each file goes: the CA key alone in CA_DIR
target_of() {
  if [[ "$1" == ca.key ]]; then echo "$CA_DIR/$PREFIX$1"; else echo "$OUT/$PREFIX$1"; fi
}

mkdir -p "$OUT"
if [[ $FORCE -eq 0 ]]; then
  for name in "${OUTPUTS[@]}" $([[ $MAKE_CA -eq 1 ]] && echo ca.key); do
    target=$(target_of "$name")
    if [[ -e "$target" ]]; then
      die "refusing to overwrite existing file $target (use --force to replace it)"
    fi
  done
fi

# Everything is made in a scratch directory and moved into place at the end, so a failure
# half-way never leaves a mismatched set of files behind.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskline-certs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
umask 077

genkey() {
  if [[ "$KEY_TYPE" == rsa ]]; then
    openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null \
      || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
      -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null
  fi
}

serial() { echo "0x$(openssl rand -hex 16)"; }

if [[ "$KEY_TYPE" == rsa ]]; then LEAF_KU="critical,digitalSignature,keyEncipherment"
else LEAF_KU="critical,digitalSignature"; fi

# A private config so the system openssl.cnf cannot add or duplicate extensions.
cat >"$WORK/openssl.cnf" <<EOF
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_server ]
basicConstraints = critical,CA:false
keyUsage = $LEAF_KU
# clientAuth too: Redis presents its server certificate as a client certificate by default
# (replication, cluster bus), and so does a Redis container's own redis-cli health check.
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
subjectAltName = ${SAN_LIST:-DNS:unused}
[ v3_server_self ]
basicConstraints = critical,CA:false
keyUsage = $LEAF_KU
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = ${SAN_LIST:-DNS:unused}
[ v3_client ]
basicConstraints = critical,CA:false
keyUsage = $LEAF_KU
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF

export OPENSSL_CONF="$WORK/openssl.cnf"

# ---- CA -------------------------------------------------------------------------------------
if [[ $MAKE_CA -eq 1 ]]; then
  genkey "$WORK/ca.key"
  openssl req -config "$WORK/openssl.cnf" -new -x509 -sha256 -key "$WORK/ca.key" \
    -subj "/CN=taskline test CA $(date -u +%Y%m%dT%H%M%S)-$RANDOM" \
    -days "$DAYS" -set_serial "$(serial)" -extensions v3_ca -out "$WORK/ca.crt"
  CA_CERT_USE="$WORK/ca.crt"
  CA_KEY_USE="$WORK/ca.key"
else
  CA_CERT_USE="$CA_CERT"
  CA_KEY_USE="$CA_KEY"
fi

# sign CSR OUT EXTENSIONS: issue a certificate from the CA, valid for $DAYS days from now.
sign() {
  openssl x509 -req -sha256 -in "$1" -CA "$CA_CERT_USE" -CAkey "$CA_KEY_USE" \
    -set_serial "$(serial)" -days "$DAYS" \
    -extfile "$WORK/openssl.cnf" -extensions "$3" -out "$2" 2>/dev/null
}

# sign_expired CSR OUT EXTENSIONS: issue a certificate whose validity ended yesterday.
# OpenSSL 3.0 'x509 -req' cannot set notBefore/notAfter, so this goes through 'openssl ca'.
sign_expired() {
  local start end
  start=$(date -u -d '-3 days' +%Y%m%d%H%M%SZ 2>/dev/null || echo 20200101000000Z)
  end=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ 2>/dev/null || echo 20200102000000Z)
  mkdir -p "$WORK/ca-db"
  : >"$WORK/ca-db/index.txt"
  openssl rand -hex 16 >"$WORK/ca-db/serial"
  cat >"$WORK/ca.cnf" <<EOF
[ ca ]
default_ca = tmp_ca
[ tmp_ca ]
database = $WORK/ca-db/index.txt
new_certs_dir = $WORK/ca-db
serial = $WORK/ca-db/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
EOF
  openssl ca -batch -notext -config "$WORK/ca.cnf" -cert "$CA_CERT_USE" -keyfile "$CA_KEY_USE" \
    -in "$1" -out "$2" -startdate "$start" -enddate "$end" \
    -extfile "$WORK/openssl.cnf" -extensions "$3" 2>/dev/null \
    || die "openssl ca failed to issue the expired certificate"
}

# ---- server ---------------------------------------------------------------------------------
if [[ $MAKE_SERVER -eq 1 ]]; then
  genkey "$WORK/server.key"
  if [[ $SELF_SIGNED -eq 1 ]]; then
    [[ $EXPIRED -eq 0 ]] || die "--expired cannot be combined with --self-signed"
    openssl req -config "$WORK/openssl.cnf" -new -x509 -sha256 -key "$WORK/server.key" \
      -subj "/CN=$SERVER_CN" -days "$DAYS" -set_serial "$(serial)" \
      -extensions v3_server_self -out "$WORK/server.crt"
  else
    openssl req -config "$WORK/openssl.cnf" -new -sha256 -key "$WORK/server.key" \
      -subj "/CN=$SERVER_CN" -out "$WORK/server.csr"
    if [[ $EXPIRED -eq 1 ]]; then
      sign_expired "$WORK/server.csr" "$WORK/server.crt" v3_server
    else
      sign "$WORK/server.csr" "$WORK/server.crt" v3_server \
        || die "signing the server certificate failed (does --ca-key match --ca-cert?)"
    fi
  fi
fi

# ---- client ---------------------------------------------------------------------------------
if [[ $MAKE_CLIENT -eq 1 ]]; then
  genkey "$WORK/client.key"
  openssl req -config "$WORK/openssl.cnf" -new -sha256 -key "$WORK/client.key" \
    -subj "/CN=$CLIENT_CN" -out "$WORK/client.csr"
  sign "$WORK/client.csr" "$WORK/client.crt" v3_client \
    || die "signing the client certificate failed (does --ca-key match --ca-cert?)"
fi

# ---- install --------------------------------------------------------------------------------
if [[ $MAKE_CA -eq 1 ]]; then
  # The CA key first, into a directory only its owner can enter, so it is never left beside
  # the certificates that get mounted into servers and containers.
  (umask 077 && mkdir -p "$CA_DIR")
  chmod 700 "$CA_DIR"
  chmod 600 "$WORK/ca.key"
  mv -f "$WORK/ca.key" "$(target_of ca.key)"
  echo "wrote $(target_of ca.key) (the CA's private key: keep it off servers and containers)"
fi
for name in "${OUTPUTS[@]}"; do
  case "$name" in *.key) chmod 600 "$WORK/$name" ;; *) chmod 644 "$WORK/$name" ;; esac
  mv -f "$WORK/$name" "$(target_of "$name")"
  echo "wrote $(target_of "$name")"
done
