// Starts probefarm-sim and a probefarmd that uses it (the daemon under `probefarm-sim env`,
// so the test can unplug boards through the simulator's control socket), on a free port in a
// temporary directory. Every wait has a deadline.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import http from 'node:http';

const run = promisify(execFile);

// Resolves with the first value `probe` returns that is not undefined; rejects after `ms`.
export async function until(what, ms, probe) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function lines(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

function exited(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, ms);
    child.once('exit', () => { clearTimeout(t); resolve(); });
  });
}

export class Farm {
  constructor({ binDir, webDir, boards }) {
    this.bin = (name) => join(binDir, name);
    this.webDir = webDir;
    this.boards = boards;  // ['stm32f407vg:cmsis-dap-v2:PFWEB01F407', ...]
    this.dir = mkdtempSync(join(tmpdir(), 'probefarm-web-'));
    this.socket = join(this.dir, 'sim.sock');
    this.log = [];
  }

  async start() {
    // The simulator: one "<serial> <probe> <chip>" line per board once it listens.
    const args = ['--socket', this.socket];
    for (const b of this.boards) args.push('--board', b);
    this.sim = spawn(this.bin('probefarm-sim'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.serials = [];
    lines(this.sim.stdout, (l) => { const [serial, probe, chip] = l.trim().split(/\s+/); if (chip) this.serials.push({ serial, probe, chip }); });
    lines(this.sim.stderr, (l) => this.log.push(`sim: ${l}`));
    await until('probefarm-sim to list its boards', 15000, () => {
      if (this.sim.exitCode !== null) throw new Error(`probefarm-sim exited: ${this.log.join('\n')}`);
      return this.serials.length === this.boards.length;
    });

    // The daemon, pointed at the simulator exactly as a user would do it.
    const script = 'eval "$("$0" env --socket "$1")" && shift && exec "$@"';
    this.daemon = spawn('sh', ['-c', script, this.bin('probefarm-sim'), this.socket, this.bin('probefarmd'),
      '--listen', '127.0.0.1:0', '--data-dir', join(this.dir, 'data'), '--web-dir', this.webDir,
      '--log-json', '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
    lines(this.daemon.stderr, (l) => {
      this.log.push(`daemon: ${l}`);
      try {
        const j = JSON.parse(l);
        if (j.event === 'probefarmd.started') this.url = j.url;
      } catch { /* not JSON: an early error, kept in the log */ }
    });
    await until('probefarmd.started', 20000, () => {
      if (this.daemon.exitCode !== null) throw new Error(`probefarmd exited: ${this.log.join('\n')}`);
      return this.url;
    });
    this.port = Number(new URL(this.url).port);
    this.adminToken = readFileSync(join(this.dir, 'data', 'admin-token'), 'utf8').trim();
    // Probes are found by the daemon's hot-plug poll; wait until every board has a target.
    await until('every simulated probe to be attached', 30000, async () => {
      const { probes } = await this.api('/api/v1/probes');
      return probes.length === this.boards.length && probes.every((p) => p.target) ? probes : undefined;
    });
  }

  async api(path, { method = 'GET', body, token = this.adminToken } = {}) {
    const res = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  }

  // A GET with the path sent byte for byte (fetch would normalise "..").
  raw(path, headers = {}) {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: this.port, path, headers, timeout: 10000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on('error', reject);
      req.end();
    });
  }

  async ctl(...args) {
    await run(this.bin('probefarm-sim'), ['ctl', '--socket', this.socket, ...args], { timeout: 10000 });
  }

  async stop() {
    for (const child of [this.daemon, this.sim]) {
      if (!child) continue;
      child.kill('SIGTERM');
      await exited(child, 10000);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
