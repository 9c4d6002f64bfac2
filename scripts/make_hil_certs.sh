#!/usr/bin/env bash
# Certificates for the HIL learner/actor transport (TLS and mutual TLS), made with openssl:
#   scripts/make_hil_certs.sh OUT_DIR [LEARNER_HOST]     (LEARNER_HOST: the name or IP actors dial; default localhost)
# OUT_DIR/ca.pem + ca.key (keep the key offline), learner.pem + learner.key (the learner's certificate, valid
# for LEARNER_HOST, localhost and 127.0.0.1), actor.pem + actor.key (a client certificate for mutual TLS).
#   learner: transport.cert=learner.pem transport.key=learner.key [transport.client_ca=ca.pem]
#   actor:   transport.ca=ca.pem [transport.cert=actor.pem transport.key=actor.key]
set -euo pipefail
OUT=${1:?usage: scripts/make_hil_certs.sh OUT_DIR [LEARNER_HOST]}
HOST=${2:-localhost}
mkdir -p "$OUT"
cd "$OUT"
if [[ "$HOST" =~ ^[0-9.]+$ ]]; then SAN="IP:$HOST"; else SAN="DNS:$HOST"; fi
SAN="$SAN,DNS:localhost,IP:127.0.0.1"
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=robot-learning HIL CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
sign() {  # name, subject, extensions
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign learner "$HOST" "subjectAltName=$SAN
extendedKeyUsage=serverAuth"
sign actor "robot-learning actor" "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
echo "wrote $OUT: ca.pem learner.pem learner.key actor.pem actor.key (CA key: ca.key)"
