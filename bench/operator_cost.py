"""What --log-format json and --metrics cost per connection: greet-server (one loop, pinned
to core 0) under `greet-client bench` (core 1), each configuration in turn, ROUNDS times,
medians. The server's user-space CPU per connection is summed over its threads from
/proc/PID/task/*/stat (kernel time, the same system calls in every configuration, is most
of the total and most of the noise). BEFORE is a release build of the commit before the
change: build it from `git archive` into /tmp/before, with its own target directory.

    python3 bench/operator_cost.py [ROUNDS]
"""
import subprocess, json, os, re, statistics, sys, glob
BEFORE=os.environ.get("BEFORE", "/tmp/before-target/release/greet-server")
ROOT=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
AFTER=os.path.join(ROOT, "target/release/greet-server")
CLIENT=os.path.join(ROOT, "target/release/greet-client")
TICK=os.sysconf("SC_CLK_TCK")
def cpu(pid):
    # user-space time only, in ns: the service's own work (kernel time is the same syscalls
    # for every configuration and dominates the noise)
    t=0
    for f in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            fields=open(f).read().rsplit(")",1)[1].split()
            t+=int(fields[11])
        except: pass
    return t*1_000_000_000//TICK
def run(binary, extra, udp=False, n=100000):
    args=["taskset","-c","0",binary,"--host","127.0.0.1","--port","0","--threads","1"]+extra
    if udp: args+=["--udp"]
    p=subprocess.Popen(args,stdout=subprocess.PIPE,stderr=subprocess.DEVNULL,text=True)
    line=p.stdout.readline()
    port=re.search(r", (\d+)\)",line).group(1)
    # drain stdout in background so the log never blocks
    drain=subprocess.Popen(["cat"],stdin=p.stdout,stdout=subprocess.DEVNULL)
    c0=cpu(p.pid)
    cargs=["taskset","-c","1",CLIENT,"bench","--port",port,"-n",str(n),"-c","64","--json"]
    if udp: cargs+=["--udp"]
    out=subprocess.run(cargs,capture_output=True,text=True)
    c1=cpu(p.pid)
    p.terminate(); p.wait(); drain.wait()
    r=json.loads(out.stdout)
    return r["rate"], (c1-c0)/1000/max(r["ok"],1), r["ok"]
configs={
 "before tcp":(BEFORE,[],False),
 "after tcp":(AFTER,[],False),
 "after tcp json":(AFTER,["--log-format","json"],False),
 "after tcp metrics":(AFTER,["--metrics","127.0.0.1:0"],False),
 "before udp":(BEFORE,[],True),
 "after udp":(AFTER,[],True),
}
res={k:[] for k in configs}
rounds=int(sys.argv[1]) if len(sys.argv)>1 else 5
for i in range(rounds):
    for k,(b,e,u) in configs.items():
        res[k].append(run(b,e,u))
for k,v in res.items():
    rates=[x[0] for x in v]; cpus=[x[1] for x in v]
    print(f"{k:24s} rate median {statistics.median(rates):8.0f}/s  (min {min(rates):.0f} max {max(rates):.0f})  server user CPU/conn median {statistics.median(cpus):6.2f} us (min {min(cpus):.2f} max {max(cpus):.2f})")
