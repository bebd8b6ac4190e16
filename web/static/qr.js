// qr.js: a small QR code encoder (byte mode, error correction level M,
// versions 1-40), so the page draws WhatsApp's login code itself: the code
// never leaves the browser and no external script is loaded. It follows
// ISO/IEC 18004; window.SwitchboardQR.matrix(text) returns the modules as
// rows of booleans (true = dark), draw(canvas, text) paints them.
'use strict';
(function () {
  // Level M: error correction codewords per block and number of blocks,
  // indexed by version (index 0 unused).
  var ECC_PER_BLOCK = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
    26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28];
  var BLOCKS = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
    17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49];
  var FORMAT_ECL_M = 0; // the two format bits of level M

  function rawModules(ver) {
    var n = (16 * ver + 128) * ver + 64;
    if (ver >= 2) {
      var align = Math.floor(ver / 7) + 2;
      n -= (25 * align - 10) * align - 55;
      if (ver >= 7) n -= 36;
    }
    return n;
  }
  function dataCodewords(ver) {
    return Math.floor(rawModules(ver) / 8) - ECC_PER_BLOCK[ver] * BLOCKS[ver];
  }

  // GF(256) with the polynomial 0x11D.
  function gfMul(x, y) {
    var z = 0;
    for (var i = 7; i >= 0; i--) {
      z = (z << 1) ^ ((z >>> 7) * 0x11D);
      z ^= ((y >>> i) & 1) * x;
    }
    return z & 0xFF;
  }
  function rsDivisor(degree) {
    var result = [];
    for (var i = 0; i < degree - 1; i++) result.push(0);
    result.push(1);
    var root = 1;
    for (i = 0; i < degree; i++) {
      for (var j = 0; j < result.length; j++) {
        result[j] = gfMul(result[j], root);
        if (j + 1 < result.length) result[j] ^= result[j + 1];
      }
      root = gfMul(root, 0x02);
    }
    return result;
  }
  function rsRemainder(data, divisor) {
    var result = divisor.map(function () { return 0; });
    data.forEach(function (b) {
      var factor = b ^ result.shift();
      result.push(0);
      divisor.forEach(function (coef, i) { result[i] ^= gfMul(coef, factor); });
    });
    return result;
  }

  function utf8(text) {
    return Array.from(new TextEncoder().encode(text));
  }

  // codewords returns the version and the final (interleaved) codewords.
  function codewords(bytes) {
    var ver, bits;
    for (ver = 1; ver <= 40; ver++) {
      var countBits = ver <= 9 ? 8 : 16;
      if (bytes.length < (1 << countBits) && 4 + countBits + 8 * bytes.length <= dataCodewords(ver) * 8) break;
    }
    if (ver > 40) throw new Error('text too long for a QR code');
    var capacity = dataCodewords(ver) * 8;
    bits = [];
    function put(val, len) { for (var i = len - 1; i >= 0; i--) bits.push((val >>> i) & 1); }
    put(4, 4); // byte mode
    put(bytes.length, ver <= 9 ? 8 : 16);
    bytes.forEach(function (b) { put(b, 8); });
    put(0, Math.min(4, capacity - bits.length));
    put(0, (8 - bits.length % 8) % 8);
    for (var pad = 0xEC; bits.length < capacity; pad ^= 0xEC ^ 0x11) put(pad, 8);
    var data = [];
    for (var i = 0; i < bits.length; i += 8) {
      var v = 0;
      for (var j = 0; j < 8; j++) v = (v << 1) | bits[i + j];
      data.push(v);
    }
    // Split into blocks, add error correction, interleave.
    var numBlocks = BLOCKS[ver], eccLen = ECC_PER_BLOCK[ver];
    var raw = Math.floor(rawModules(ver) / 8);
    var numShort = numBlocks - raw % numBlocks;
    var shortLen = Math.floor(raw / numBlocks);
    var divisor = rsDivisor(eccLen);
    var blocks = [];
    for (i = 0, j = 0; i < numBlocks; i++) {
      var dat = data.slice(j, j + shortLen - eccLen + (i < numShort ? 0 : 1));
      j += dat.length;
      var ecc = rsRemainder(dat, divisor);
      if (i < numShort) dat.push(0);
      blocks.push(dat.concat(ecc));
    }
    var out = [];
    for (i = 0; i < blocks[0].length; i++) {
      for (j = 0; j < blocks.length; j++) {
        if (i !== shortLen - eccLen || j >= numShort) out.push(blocks[j][i]);
      }
    }
    return { version: ver, data: out };
  }

  function alignmentPositions(ver, size) {
    if (ver === 1) return [];
    var n = Math.floor(ver / 7) + 2;
    var step = Math.floor((ver * 8 + n * 3 + 5) / (n * 4 - 4)) * 2;
    var result = [6];
    for (var pos = size - 7; result.length < n; pos -= step) result.splice(1, 0, pos);
    return result;
  }

  function bit(x, i) { return ((x >>> i) & 1) !== 0; }

  var MASKS = [
    function (x, y) { return (x + y) % 2 === 0; },
    function (x, y) { return y % 2 === 0; },
    function (x, y) { return x % 3 === 0; },
    function (x, y) { return (x + y) % 3 === 0; },
    function (x, y) { return (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0; },
    function (x, y) { return x * y % 2 + x * y % 3 === 0; },
    function (x, y) { return (x * y % 2 + x * y % 3) % 2 === 0; },
    function (x, y) { return ((x + y) % 2 + x * y % 3) % 2 === 0; }
  ];

  function build(ver, data, mask) {
    var size = ver * 4 + 17;
    var m = [], fn = [];
    for (var y = 0; y < size; y++) {
      m.push(new Array(size).fill(false));
      fn.push(new Array(size).fill(false));
    }
    function set(x, y, dark) { m[y][x] = dark; fn[y][x] = true; }
    // Timing patterns.
    for (var i = 0; i < size; i++) {
      set(6, i, i % 2 === 0);
      set(i, 6, i % 2 === 0);
    }
    // Finder patterns with their separators.
    [[3, 3], [size - 4, 3], [3, size - 4]].forEach(function (c) {
      for (var dy = -4; dy <= 4; dy++) {
        for (var dx = -4; dx <= 4; dx++) {
          var d = Math.max(Math.abs(dx), Math.abs(dy)), xx = c[0] + dx, yy = c[1] + dy;
          if (xx >= 0 && xx < size && yy >= 0 && yy < size) set(xx, yy, d !== 2 && d !== 4);
        }
      }
    });
    // Alignment patterns.
    var pos = alignmentPositions(ver, size), last = pos.length - 1;
    for (i = 0; i < pos.length; i++) {
      for (var j = 0; j < pos.length; j++) {
        if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) continue;
        for (var ay = -2; ay <= 2; ay++) {
          for (var ax = -2; ax <= 2; ax++) set(pos[i] + ax, pos[j] + ay, Math.max(Math.abs(ax), Math.abs(ay)) !== 1);
        }
      }
    }
    // Format bits.
    var fdata = FORMAT_ECL_M << 3 | mask, rem = fdata;
    for (i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    var fbits = (fdata << 10 | rem) ^ 0x5412;
    for (i = 0; i <= 5; i++) set(8, i, bit(fbits, i));
    set(8, 7, bit(fbits, 6));
    set(8, 8, bit(fbits, 7));
    set(7, 8, bit(fbits, 8));
    for (i = 9; i < 15; i++) set(14 - i, 8, bit(fbits, i));
    for (i = 0; i < 8; i++) set(size - 1 - i, 8, bit(fbits, i));
    for (i = 8; i < 15; i++) set(8, size - 15 + i, bit(fbits, i));
    set(8, size - 8, true);
    // Version information.
    if (ver >= 7) {
      rem = ver;
      for (i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1F25);
      var vbits = ver << 12 | rem;
      for (i = 0; i < 18; i++) {
        var a = size - 11 + i % 3, b = Math.floor(i / 3);
        set(a, b, bit(vbits, i));
        set(b, a, bit(vbits, i));
      }
    }
    // Data, in the zigzag order, masked.
    var k = 0;
    for (var right = size - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      for (var vert = 0; vert < size; vert++) {
        for (j = 0; j < 2; j++) {
          var x = right - j;
          var y2 = ((right + 1) & 2) === 0 ? size - 1 - vert : vert;
          if (fn[y2][x]) continue;
          var dark = k < data.length * 8 && bit(data[k >>> 3], 7 - (k & 7));
          k++;
          m[y2][x] = dark !== MASKS[mask](x, y2);
        }
      }
    }
    return m;
  }

  // penalty scores a masked symbol (rules 1, 2 and 4 of the standard;
  // any mask gives a valid code, the score only helps scanners).
  function penalty(m) {
    var size = m.length, score = 0, dark = 0;
    for (var y = 0; y < size; y++) {
      for (var pass = 0; pass < 2; pass++) {
        var run = 1;
        for (var x = 1; x < size; x++) {
          var cur = pass ? m[x][y] : m[y][x], prev = pass ? m[x - 1][y] : m[y][x - 1];
          if (cur === prev) {
            run++;
            if (run === 5) score += 3; else if (run > 5) score++;
          } else run = 1;
        }
      }
      for (x = 0; x < size; x++) {
        if (m[y][x]) dark++;
        if (y + 1 < size && x + 1 < size && m[y][x] === m[y][x + 1] && m[y][x] === m[y + 1][x] && m[y][x] === m[y + 1][x + 1]) score += 3;
      }
    }
    var total = size * size;
    score += (Math.ceil(Math.abs(dark * 20 - total * 10) / total) - 1) * 10;
    return score;
  }

  function matrix(text) {
    var cw = codewords(utf8(text));
    var best = null, bestScore = Infinity;
    for (var mask = 0; mask < 8; mask++) {
      var m = build(cw.version, cw.data, mask), s = penalty(m);
      if (s < bestScore) { best = m; bestScore = s; }
    }
    return best;
  }

  // draw paints text's QR code on canvas with a quiet zone of 4 modules.
  function draw(canvas, text) {
    var m = matrix(text), quiet = 4, scale = 6, n = m.length + 2 * quiet;
    canvas.width = canvas.height = n * scale;
    var ctx = canvas.getContext('2d');
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = '#000000';
    for (var y = 0; y < m.length; y++) {
      for (var x = 0; x < m.length; x++) {
        if (m[y][x]) ctx.fillRect((x + quiet) * scale, (y + quiet) * scale, scale, scale);
      }
    }
  }

  window.SwitchboardQR = { matrix: matrix, draw: draw };
})();
