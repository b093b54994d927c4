// AudioWorklet: microphone audio -> mono 16 kHz PCM s16le frames posted to the page.
//
// Runs at the AudioContext's rate (the global `sampleRate`, often 48 kHz). Channels are averaged; when the
// rate differs from the target, a windowed-sinc low-pass (cut-off 90% of the target Nyquist) is applied and
// the result is sampled by linear interpolation at the target rate. Every `frameSamples` output samples, an
// Int16Array is posted (its buffer transferred). A "flush" message posts what is left, then "flushed".

/** Low-pass FIR taps: Blackman-windowed sinc with cut-off `fc` (cycles per sample), unit DC gain. */
function lowpass(fc, numTaps) {
  const h = new Float32Array(numTaps);
  const m = numTaps - 1;
  let sum = 0;
  for (let i = 0; i < numTaps; i++) {
    const x = i - m / 2;
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / m) + 0.08 * Math.cos((4 * Math.PI * i) / m);
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < numTaps; i++) h[i] /= sum;
  return h;
}

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.outRate = o.targetRate || 16000;
    this.frameSamples = o.frameSamples || 1600;
    this.ratio = sampleRate / this.outRate; // input samples per output sample
    this.passThrough = Math.abs(this.ratio - 1) < 1e-9;
    this.taps = this.ratio > 1 ? lowpass((0.45 / this.ratio), 2 * Math.ceil(8 * this.ratio) + 1) : null;
    this.history = new Float32Array(this.taps ? this.taps.length - 1 : 0); // last input samples (FIR state)
    this.pending = new Float32Array(0); // filtered input not yet passed by the interpolator
    this.pos = 0; // position of the next output sample, in `pending` samples
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.peak = 0; // loudest sample since the last frame (for a level meter)
    this.port.onmessage = (e) => {
      if (e.data === "flush") {
        this.post(true);
        this.port.postMessage("flushed");
      }
    };
  }

  emit(y) {
    const v = Math.round(y * 32768);
    this.frame[this.filled++] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    const a = Math.abs(y);
    if (a > this.peak) this.peak = a;
    if (this.filled === this.frameSamples) this.post(false);
  }

  post(partial) {
    if (this.filled === 0) return;
    const out = partial ? this.frame.slice(0, this.filled) : this.frame;
    this.port.postMessage({ pcm: out.buffer, peak: this.peak }, [out.buffer]);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.peak = 0;
  }

  filter(x) {
    const h = this.taps;
    const k = this.history.length;
    const ext = new Float32Array(k + x.length);
    ext.set(this.history);
    ext.set(x, k);
    const y = new Float32Array(x.length);
    for (let n = 0; n < x.length; n++) {
      let acc = 0;
      for (let j = 0; j <= k; j++) acc += h[j] * ext[n + k - j];
      y[n] = acc;
    }
    this.history = ext.slice(ext.length - k);
    return y;
  }

  resample(x) {
    const y = this.taps ? this.filter(x) : x;
    const buf = new Float32Array(this.pending.length + y.length);
    buf.set(this.pending);
    buf.set(y, this.pending.length);
    let pos = this.pos;
    while (pos + 1 < buf.length) {
      const i = Math.floor(pos);
      const f = pos - i;
      this.emit(buf[i] * (1 - f) + buf[i + 1] * f);
      pos += this.ratio;
    }
    const used = Math.min(Math.floor(pos), buf.length);
    this.pending = buf.slice(used);
    this.pos = pos - used;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    const mono = new Float32Array(n);
    for (const ch of channels) for (let i = 0; i < n; i++) mono[i] += ch[i] / channels.length;
    if (this.passThrough) {
      for (let i = 0; i < n; i++) this.emit(mono[i]);
    } else {
      this.resample(mono);
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
