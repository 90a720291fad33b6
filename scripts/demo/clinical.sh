# shellcheck shell=bash
# The clinical-classes scenario (sourced, not run on its own), one harness for both of its users:
# demo.sh's "clinical classes" phase (scripts/demo/clinical_demo.sh) and the benchmark
# gateway/bench/classes.sh. Between two site namespaces joined by a veth, site A's WAN-facing end
# is shaped to a 200 Mbit/s WAN with a token bucket, and three kinds of hospital traffic go from
# site A to site B through whatever tunnel the caller runs (qgw with classes on or off,
# wireguard-go):
#   telemonitoring  MQTT vital signs every 20 ms to a mosquitto broker at site B (TCP 1883),
#   telemedicine    an RTP-like 4.08 Mbit/s video stream (UDP 20000),
#   imaging         dcmtk storescu of a synthetic CT study, over and over, to storescp (TCP 11112,
#                   or CLIN_DICOM_PORT),
# the probes of scripts/demo/clinical.py, each bounded in time and ended by PID.
#
#   clin_shape / clin_unshape    tbf on / off site A's WAN veth; a tc error ends the caller (die)
#   clin_services                site B's broker (unless one listens already) and storescp --ignore,
#                                and the study the imaging probe sends
#   clin_run VARIANT PHASE ROUND the probes for CLIN_SECS: PHASE idle (telemonitoring + video),
#                                load (the same while imaging saturates the WAN) or imaging (imaging
#                                alone); appends {"variant", "phase", "round", results...} to
#                                $CLIN_OUT/results.jsonl and prints its line
#   clin_egress_rate FILE RATE   adds `egress_rate: RATE` to the first peer of qgw config FILE
#   clin_kernel_classes DEV RATE the kernel's best answer on a tunnel device DEV in CLIN_A (qgw with
#                                classes off): HTB at RATE with the four classes, u32 filters on the
#                                built-in ports, pfifo leaves (below); a tc error ends the caller
#   clin_stop PID, clin_stop_all end one / every process started here (TERM, then KILL after 5 s)
#
# Uses from the caller: CLIN_A, CLIN_B (site A's and site B's namespaces), CLIN_WAN_IF (site A's
# WAN-facing veth, in CLIN_A), CLIN_DST (site B's tunnel address), CLIN_OUT (logs and results),
# CLIN_SECS (seconds a phase measures), die and info (the caller's); `started PID` when the caller
# has it (demo.sh's lib.sh: the demo's teardown then knows these PIDs as well).
# Sets: CLIN_PIDS, clin_last, clin_result (the last run's JSON line).
# shellcheck disable=SC2154 # the variables above are the caller's

CLIN_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLIN_PY="$CLIN_HERE/clinical.py"
# The shaped WAN: 200 Mbit/s, a 64 KiB bucket (one GSO super-packet fits) and at most 100 ms of
# queue (tbf's limit = rate x latency + burst, about 2.5 MB) on site A's way out. This kernel has
# tbf, htb and pfifo only (no netem, fq_codel, cake or prio): a plain FIFO WAN queue.
CLIN_TBF=(rate 200mbit burst 64kb latency 100ms)
CLIN_STREAMS=${CLIN_STREAMS:-2} # concurrent storescu associations: two modalities sending at once
CLIN_SLICES=20                  # CT slices of the study (512x512, 16 bit, 0.5 MB each)
CLIN_DICOM_PORT=${CLIN_DICOM_PORT:-11112} # storescp's port: DICOM's 11112 (or 104)
declare -a CLIN_PIDS=()

clin_start() { # NS LOG CMD...: CMD in NS in the background, its PID in clin_last
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" < /dev/null > "$log" 2>&1 &
  clin_last=$!
  CLIN_PIDS+=("$clin_last")
  if declare -F started > /dev/null; then started "$clin_last"; fi
}
clin_stop() { # PID: TERM, up to 5 s, then KILL; only a PID this harness started
  local p=$1 known=0 q _
  for q in "${CLIN_PIDS[@]}"; do [ "$q" = "$p" ] && known=1; done
  [ "$known" = 1 ] || return 0
  if kill -0 "$p" 2> /dev/null; then
    kill "$p" 2> /dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2> /dev/null || true
  fi
  wait "$p" 2> /dev/null || true
}
clin_stop_all() {
  local p
  for p in "${CLIN_PIDS[@]}"; do clin_stop "$p"; done
  CLIN_PIDS=()
}
clin_until() { # SECONDS CMD...: true once CMD succeeds (tried every 0.1 s)
  local n=$(($1 * 10)) _
  shift
  for _ in $(seq "$n"); do "$@" 2> /dev/null && return 0; sleep 0.1; done
  return 1
}
clin_listens() { [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2> /dev/null)" ]; } # NS PORT

clin_shape() {
  local err
  err=$(ip netns exec "$CLIN_A" tc qdisc replace dev "$CLIN_WAN_IF" root tbf "${CLIN_TBF[@]}" 2>&1) \
    || die "tc tbf on $CLIN_WAN_IF failed (this scenario needs sch_tbf): $err"
  ip netns exec "$CLIN_A" tc qdisc show dev "$CLIN_WAN_IF" | grep -q 'tbf .*rate 200Mbit' \
    || die "tc: no 200 Mbit/s tbf on $CLIN_WAN_IF: $(ip netns exec "$CLIN_A" tc qdisc show dev "$CLIN_WAN_IF")"
}
clin_unshape() { ip netns exec "$CLIN_A" tc qdisc del dev "$CLIN_WAN_IF" root 2> /dev/null || true; }

clin_services() {
  mkdir -p "$CLIN_OUT"
  if ! clin_listens "$CLIN_B" 1883; then
    # Every address of site B (inside the namespace): the tunnel's comes and goes with each
    # variant's daemons. Anonymous plain MQTT, as the demo's broker, inside the tunnel.
    printf 'listener 1883\nallow_anonymous true\npersistence false\nlog_dest stderr\n' > "$CLIN_OUT/mosquitto.conf"
    clin_start "$CLIN_B" "$CLIN_OUT/mosquitto.log" mosquitto -c "$CLIN_OUT/mosquitto.conf"
    clin_until 5 clin_listens "$CLIN_B" 1883 || die "mosquitto did not start: $(tail -n 3 "$CLIN_OUT/mosquitto.log")"
  fi
  # --ignore: receive every data set and answer success, store nothing (the loop sends gigabytes);
  # --fork: one process per association (the storescu streams run at once); TCP_NODELAY=1: see
  # clinical.py's imaging (without it every store waits for a delayed ACK).
  clin_start "$CLIN_B" "$CLIN_OUT/storescp.log" env TCP_NODELAY=1 storescp --fork --ignore -aet SITE_B_PACS -pdu 131072 "$CLIN_DICOM_PORT"
  clin_until 5 clin_listens "$CLIN_B" "$CLIN_DICOM_PORT" || die "storescp did not start: $(tail -n 3 "$CLIN_OUT/storescp.log")"
  if [ ! -d "$CLIN_OUT/study" ]; then
    python3 "$CLIN_HERE/dicom.py" make "$CLIN_OUT/study" "$CLIN_SLICES" > "$CLIN_OUT/study.log" 2>&1 \
      || die "could not make the imaging study: $(tail -n 3 "$CLIN_OUT/study.log")"
  fi
}

clin_egress_rate() { # FILE RATE: `egress_rate: RATE` after the first peer's allowed_ips line
  sed -i "0,/^    allowed_ips:/s//    egress_rate: $2\n&/" "$1"
  grep -q "^    egress_rate: $2\$" "$1" || die "could not add egress_rate to $1"
}

# The kernel alternative to qgw's egress scheduler (docs/gateway-decisions.md, "Traffic classes"),
# as well as this kernel allows (HTB, TBF, pfifo, the u32 and bpf classifiers; no fq_codel, CAKE
# or prio): an HTB root at RATE on the tunnel device, the classes in qgw's order and shares —
# telemonitoring prio 0, rate 25 %; telemedicine, imaging and default prio 1, rates 4:2:1 of the
# rest and DRR quanta in the same proportion; every ceil 100 %, bursts of 2 ms at RATE as qgw's
# bucket — u32 filters on the built-in ports (either end's, as qgw's rules; IPv4 and IPv6, no IP
# options or extension headers: u32 reads fixed offsets; no DSCP rules) and a pfifo of
# CLIN_HTB_LIMIT packets under each class. What it cannot do here: no AQM (a class's queue stands
# until its FIFO overflows) and no flow fairness inside a class (two DICOM studies share one
# FIFO); telemonitoring borrows up to 100 % at prio 0 (qgw caps its priority at 25 %). It counts
# inner bytes, not the 60-byte-larger outer datagrams the WAN carries, and with qgw's TUN
# offloads on (as shipped) it sees TSO super-packets of up to 64 KiB, each one queue entry.
CLIN_HTB_LIMIT=${CLIN_HTB_LIMIT:-1000} # packets (skbs) per class FIFO: the kernel's usual txqueuelen
clin_kbit() { # RATE (N, Nkbit, Nmbit or Ngbit) -> kbit/s
  case $1 in
    *gbit) echo $((${1%gbit} * 1000000)) ;;
    *mbit) echo $((${1%mbit} * 1000)) ;;
    *kbit) echo "${1%kbit}" ;;
    *) die "rate $1: a whole number of kbit, mbit or gbit" ;;
  esac
}
clin_kernel_classes() { # DEV RATE
  local dev=$1 rate tm rest burst c id prio r q proto port mask end err
  rate=$(clin_kbit "$2")
  tm=$((rate / 4)) rest=$((rate - rate / 4)) burst=$((rate / 4)) # bytes in 2 ms: kbit/s x 1000 / 8 x 0.002
  # classid  prio  rate (kbit/s)    quantum (bytes): telemonitoring, telemedicine, imaging, default
  local classes=("10 0 $tm 15000" "20 1 $((rest * 4 / 7)) 60000" "30 1 $((rest * 2 / 7)) 30000" "40 1 $((rest / 7)) 15000")
  # proto-number port mask classid: the built-in port rules (qgw's classes/rules.rs)
  local filters=("6 1883 0xffff 10" "6 8883 0xffff 10" "6 2575 0xffff 10" "6 5060 0xffff 20" "17 5060 0xffff 20"
    "6 5061 0xffff 20" "17 0x4000 0xc000 20" "6 104 0xffff 30" "6 11112 0xffff 30")
  local cmds=("qdisc replace dev $dev root handle 1: htb default 40"
    "class add dev $dev parent 1: classid 1:1 htb rate ${rate}kbit ceil ${rate}kbit burst $burst cburst $burst")
  for c in "${classes[@]}"; do
    read -r id prio r q <<< "$c"
    cmds+=("class add dev $dev parent 1:1 classid 1:$id htb rate ${r}kbit ceil ${rate}kbit burst $burst cburst $burst prio $prio quantum $q"
      "qdisc add dev $dev parent 1:$id handle $id: pfifo limit $CLIN_HTB_LIMIT")
  done
  for c in "${filters[@]}"; do
    read -r proto port mask id <<< "$c" # 0x4000/0xc000: 16384-32767, the RTP range
    for end in sport dport; do
      cmds+=("filter add dev $dev parent 1: protocol ip prio 1 u32 match ip protocol $proto 0xff match ip $end $port $mask flowid 1:$id"
        "filter add dev $dev parent 1: protocol ipv6 prio 2 u32 match ip6 protocol $proto 0xff match ip6 $end $port $mask flowid 1:$id")
    done
  done
  for c in "${cmds[@]}"; do
    # shellcheck disable=SC2086 # each command is words
    err=$(ip netns exec "$CLIN_A" tc $c 2>&1) || die "tc $c failed (the kernel variant needs sch_htb, sch_pfifo, cls_u32): $err"
  done
  ip netns exec "$CLIN_A" tc qdisc show dev "$dev" | grep -q '^qdisc htb 1: root' \
    || die "tc: no htb root on $dev: $(ip netns exec "$CLIN_A" tc qdisc show dev "$dev")"
}

clin_run() { # VARIANT PHASE ROUND
  local tag="$CLIN_OUT/$1.$2.r$3" secs=$CLIN_SECS life=$((CLIN_SECS + 20)) pids=() p
  rm -f "$tag".*.json
  if [ "$2" != idle ]; then
    # Imaging first, so the WAN is saturated when the other probes start; it ends after them.
    [ "$2" = load ] && secs=$((CLIN_SECS + 4))
    clin_start "$CLIN_A" "$tag.imaging.json" timeout -k 2 "$life" python3 "$CLIN_PY" imaging "$CLIN_DST" "$secs" "$CLIN_OUT/study" "$CLIN_STREAMS" "$CLIN_DICOM_PORT"
    pids+=("$clin_last")
    [ "$2" = load ] && sleep 2
  fi
  if [ "$2" != imaging ]; then
    clin_start "$CLIN_B" "$tag.mqtt-sub.json" timeout -k 2 "$life" python3 "$CLIN_PY" mqtt-sub "$CLIN_DST" "$CLIN_SECS"
    pids+=("$clin_last")
    clin_start "$CLIN_B" "$tag.video-recv.json" timeout -k 2 "$life" python3 "$CLIN_PY" video-recv "$CLIN_DST" "$CLIN_SECS"
    pids+=("$clin_last")
    clin_until 10 grep -q subscribed "$tag.mqtt-sub.json" || info "telemonitoring: the subscriber did not subscribe: $(tail -n 2 "$tag.mqtt-sub.json")"
    clin_until 10 grep -q listening "$tag.video-recv.json" || info "video: the receiver did not start: $(tail -n 2 "$tag.video-recv.json")"
    clin_start "$CLIN_A" "$tag.mqtt-pub.json" timeout -k 2 "$life" python3 "$CLIN_PY" mqtt-pub "$CLIN_DST" "$CLIN_SECS"
    pids+=("$clin_last")
    clin_start "$CLIN_A" "$tag.video-send.json" timeout -k 2 "$life" python3 "$CLIN_PY" video-send "$CLIN_DST" "$CLIN_SECS"
    pids+=("$clin_last")
  fi
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  clin_result=$(python3 "$CLIN_PY" summary "$1" "$2" "$3" "$tag".*.json)
  echo "$clin_result" | tee -a "$CLIN_OUT/results.jsonl"
}
