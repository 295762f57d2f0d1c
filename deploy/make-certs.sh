#!/usr/bin/env bash
# Certificates for the Checkpoint MQTT broker (mutual TLS), made with openssl.
#
#   deploy/make-certs.sh OUTDIR NAME...
#
# Creates in OUTDIR:
#   ca.crt, ca.key          the private CA (made once; reused on every later run)
#   broker.crt, broker.key  the broker's server certificate
#   NAME.crt, NAME.key      one client certificate per NAME, with CN = NAME
#
# NAME is an edge id (the `edge.id` of its edge.yaml) or a hub worker identity
# `hub-<name>`. The broker runs with `use_identity_as_username true`, so the CN
# *is* the MQTT username the ACL (deploy/mosquitto.acl) sees: an edge may publish
# only under checkpoint/edge/<its CN>/..., and hub-* names get the hub's rights.
# Edge ids must therefore never start with "hub-".
#
# Environment (all optional):
#   BROKER_CN    CN of the broker certificate                 (default: localhost)
#   BROKER_SAN   its subjectAltName; it must hold every name and address the
#                clients connect to (they check it)      (default: DNS:localhost,IP:127.0.0.1)
#                e.g. BROKER_CN=hub.border.example BROKER_SAN=DNS:hub.border.example,IP:10.0.0.5
#   ORG          O= of every subject                          (default: Checkpoint)
#   KEY_ALG      ec (ECDSA P-256) or rsa (RSA 2048)           (default: ec)
#   CA_DAYS      validity of the CA                           (default: 3650)
#   DAYS         validity of broker and client certificates   (default: 825)
#
# Idempotent: a key or certificate already in OUTDIR is kept as long as the CA
# there verifies it; one that the CA does not verify (e.g. the CA was replaced)
# is issued again. Private keys are written mode 600; ca.key never leaves the
# machine that runs this script: copy only ca.crt, NAME.crt and NAME.key to a box.
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: make-certs.sh OUTDIR NAME...

  OUTDIR  folder for ca.crt/ca.key, broker.crt/broker.key and NAME.crt/NAME.key
  NAME    an edge id or a hub identity (hub-<name>); becomes the certificate's CN,
          which the broker uses as the MQTT username for its ACL.
          Allowed: letters, digits, '.', '_', '-' (1-64 characters, starting with a
          letter or digit); "ca" and "broker" are reserved.

environment: BROKER_CN, BROKER_SAN, ORG, KEY_ALG (ec|rsa), CA_DAYS, DAYS
example:     deploy/make-certs.sh /srv/checkpoint-pki khorgos-edge-01 khorgos-edge-02 hub-1 hub-2
EOF
    exit 2
}

[[ $# -ge 1 && $1 != -h && $1 != --help ]] || usage
OUTDIR=$1
shift

BROKER_CN=${BROKER_CN:-localhost}
BROKER_SAN=${BROKER_SAN:-DNS:localhost,IP:127.0.0.1}
ORG=${ORG:-Checkpoint}
KEY_ALG=${KEY_ALG:-ec}
CA_DAYS=${CA_DAYS:-3650}
DAYS=${DAYS:-825}

command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found" >&2; exit 1; }
case $KEY_ALG in ec | rsa) ;; *) echo "make-certs.sh: KEY_ALG must be ec or rsa, not '$KEY_ALG'" >&2; exit 2 ;; esac

# A CN becomes a topic level through the ACL's %u: '/', '+', '#' or spaces in it would
# change what the pattern matches, so only a safe alphabet is allowed.
for name in "$@"; do
    if [[ ! $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
        echo "make-certs.sh: invalid name '$name' (letters, digits, '.', '_', '-'; at most 64)" >&2
        exit 2
    fi
    if [[ $name == ca || $name == broker ]]; then
        echo "make-certs.sh: '$name' is reserved (it would overwrite $name.crt)" >&2
        exit 2
    fi
done

mkdir -p "$OUTDIR"
chmod 700 "$OUTDIR"
umask 077  # every file created from here on (keys first of all) is private
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

new_key() {  # new_key FILE: a fresh private key, mode 600
    if [[ $KEY_ALG == ec ]]; then
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    else
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
    fi
    chmod 600 "$1"
}

# ------------------------------------------------------------------ CA (once)
if [[ -s $OUTDIR/ca.crt && -s $OUTDIR/ca.key ]]; then
    echo "ca: kept $OUTDIR/ca.crt"
elif [[ -e $OUTDIR/ca.crt || -e $OUTDIR/ca.key ]]; then
    echo "make-certs.sh: $OUTDIR has only one of ca.crt/ca.key; refusing to replace a CA" >&2
    exit 1
else
    new_key "$OUTDIR/ca.key"
    openssl req -x509 -new -sha256 -key "$OUTDIR/ca.key" -days "$CA_DAYS" \
        -subj "/O=$ORG/CN=$ORG MQTT CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$OUTDIR/ca.crt"
    chmod 644 "$OUTDIR/ca.crt"
    echo "ca: created $OUTDIR/ca.crt (valid $CA_DAYS days)"
fi

# ------------------------------------------------------------------ leaf certificates
issue() {  # issue BASENAME CN EXTENSIONS...: BASENAME.key/.crt signed by the CA
    local base=$1 cn=$2
    shift 2
    local key=$OUTDIR/$base.key crt=$OUTDIR/$base.crt
    if [[ -s $crt && -s $key ]] && openssl verify -CAfile "$OUTDIR/ca.crt" "$crt" >/dev/null 2>&1; then
        echo "$base: kept $crt"
        return
    fi
    [[ -s $crt ]] && echo "$base: $crt is not signed by this CA (or expired): issuing it again" >&2
    [[ -s $key ]] || new_key "$key"
    printf '%s\n' "$@" >"$TMP/$base.ext"
    openssl req -new -sha256 -key "$key" -subj "/O=$ORG/CN=$cn" -out "$TMP/$base.csr"
    openssl x509 -req -sha256 -in "$TMP/$base.csr" -CA "$OUTDIR/ca.crt" -CAkey "$OUTDIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -extfile "$TMP/$base.ext" \
        -out "$crt" 2>/dev/null
    chmod 644 "$crt"
    echo "$base: issued $crt (CN=$cn, valid $DAYS days)"
}

# An ECDSA key only signs; an RSA key may also encipher (TLS 1.2 RSA key exchange).
if [[ $KEY_ALG == ec ]]; then USAGE=digitalSignature; else USAGE=digitalSignature,keyEncipherment; fi

issue broker "$BROKER_CN" \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,$USAGE" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=$BROKER_SAN" \
    "subjectKeyIdentifier=hash" \
    "authorityKeyIdentifier=keyid"

for name in "$@"; do
    issue "$name" "$name" \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,$USAGE" \
        "extendedKeyUsage=clientAuth" \
        "subjectKeyIdentifier=hash" \
        "authorityKeyIdentifier=keyid"
done
