/*
 * The dashboard page of dcache-transfer-probe: reads the probe's JSON API (api/...) and draws
 * it with uPlot (served by the probe from its npm package). Every number shown comes from one
 * API response, and the page writes the exact values it drew into data-* attributes so that a
 * test can compare them with the API. Refreshes every 5 s (?refresh=N to change, 0 to stop);
 * until the first data, every second. Until the first answers it says it is loading (and
 * <body data-loading>); each part is drawn as soon as its answer is in.
 */
(function () {
  'use strict';

  var params = new URLSearchParams(location.search);
  var state = {
    window: params.get('window') || 'hour',
    dimension: params.get('dimension') || 'direction',
    refreshMs: params.has('refresh') ? Number(params.get('refresh')) * 1000 : 5000,
  };
  var charts = {};
  var COLORS = ['#1f5fbf', '#e8590c', '#2f9e44', '#ae3ec9', '#f08c00', '#0c8599', '#c92a2a', '#5c7cfa', '#868e96'];
  var DIMENSION_NAMES = { direction: 'direction', protocol: 'protocol', vo: 'VO', user: 'user', pool: 'pool', door: 'door', client_net: 'client network', error: 'error code' };

  function $(id) { return document.getElementById(id); }

  function api(path) {
    return fetch(path, { cache: 'no-store' }).then(function (res) {
      if (!res.ok) return res.text().then(function (t) { throw new Error(path + ': ' + res.status + ' ' + t); });
      return res.json();
    });
  }

  function fmtBytes(n) {
    var units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
    var i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[i];
  }
  function fmtRate(n) { return n === null || n === undefined ? '–' : fmtBytes(n) + '/s'; }
  function fmtInt(n) { return Math.round(n).toLocaleString('en-US'); }
  function fmtPct(r) { return (r * 100).toFixed(r < 0.1 ? 2 : 1) + ' %'; }
  function fmtMs(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + ' s';
    if (ms < 3600000) return (ms / 60000).toFixed(0) + ' min';
    return (ms / 3600000).toFixed(1) + ' h';
  }
  function fmtTime(iso) { return new Date(iso).toLocaleTimeString('en-GB'); }

  function setValue(id, text, value) {
    var el = $(id);
    el.textContent = text;
    el.setAttribute('data-value', String(value));
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // --- summary tiles ---------------------------------------------------------------------
  function drawSummary(s) {
    setValue('t-transfers', fmtInt(s.transfers), s.transfers);
    setValue('t-bytes', fmtBytes(s.bytes), s.bytes);
    setValue('t-rate', fmtRate(s.bytesPerSecond), s.bytesPerSecond);
    var read = s.byDirection.read ? s.byDirection.read.bytes : 0;
    var write = s.byDirection.write ? s.byDirection.write.bytes : 0;
    setValue('t-rw', fmtBytes(read) + ' / ' + fmtBytes(write), read + '/' + write);
    setValue('t-errors', fmtInt(s.errors) + ' (' + fmtPct(s.errorRate) + ')', s.errors);
    setValue('t-denied', fmtInt(s.denied), s.denied);
  }

  // --- alerts ----------------------------------------------------------------------------
  function drawAlerts(a) {
    var list = $('alert-list');
    list.textContent = '';
    if (a.open.length === 0) list.appendChild(el('li', { class: 'none', 'data-testid': 'no-alerts' }, 'No abnormal traffic now.'));
    a.open.concat(a.recent.slice(0, 5)).forEach(function (x) {
      var li = el('li', { 'data-testid': x.closedAt ? 'alert-closed' : 'alert', 'data-id': String(x.id), 'data-kind': x.kind, 'data-dimension': x.dimension, 'data-key': x.key, class: x.closedAt ? 'closed' : '' });
      li.appendChild(el('span', { class: 'kind' }, x.kind));
      li.appendChild(el('span', {}, x.message));
      // The id is what /metrics shows as the key of a personal one (a DN, a client network).
      li.appendChild(el('span', { class: 'id' }, 'alert ' + x.id));
      li.appendChild(el('span', { class: 'when' }, x.closedAt ? 'from ' + fmtTime(x.openedAt) + ' to ' + fmtTime(x.closedAt) : 'since ' + fmtTime(x.openedAt)));
      list.appendChild(li);
    });
    $('alerts').setAttribute('data-open', String(a.open.length));
  }

  // --- charts (uPlot) --------------------------------------------------------------------
  function chartWidth(id) { return Math.max(280, $(id).clientWidth); }

  /** The y axis as wide as its longest label (a fixed width clipped "1.5 GB/s" to "l5.0 GB/s"). */
  function axisSize(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size; // uPlot converges; keep the size of the last pass
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (a, v) { return String(v).length > a.length ? String(v) : a; }, '');
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
    }
    return Math.ceil(size) + 4;
  }

  /** Creates the chart, or gives it new data when its series are the same. */
  function plot(id, labels, data, opts) {
    // Same series, range and ticks: new data into the same chart; else a new chart.
    var signature = [labels.join('\u0001'), opts.xRange ? opts.xRange.join() : '', opts.xAxis && opts.xAxis.incrs ? opts.xAxis.incrs[0] : ''].join('\u0002');
    var c = charts[id];
    if (c && c.signature === signature) {
      c.chart.setData(data);
      return;
    }
    if (c) c.chart.destroy();
    else $(id).textContent = ''; // the loading note
    var series = [{}].concat(labels.map(function (label, i) {
      return Object.assign({ label: label, stroke: COLORS[i % COLORS.length], width: 1.5, value: function (u, v) { return v === null ? '–' : opts.format(v); } }, opts.series ? opts.series(i) : {});
    }));
    var chart = new uPlot({
      width: chartWidth(id),
      height: 220,
      series: series,
      scales: {
        x: opts.xRange ? { time: opts.time !== false, range: opts.xRange } : { time: opts.time !== false },
        // Rates and counts from zero (a few points alone would otherwise float mid-chart).
        y: { range: function (u, min, max) { return uPlot.rangeNum(0, max > 0 ? max : 1, 0.1, true); } },
      },
      axes: [opts.xAxis || {}, { size: axisSize, values: function (u, vals) { return vals.map(opts.format); } }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    }, data, $(id));
    charts[id] = { chart: chart, signature: signature };
    $(id).uplot = chart; // the browser test reads its axes
  }

  /**
   * How many leading steps of a window come before the first data the probe holds (a probe
   * running for less than the window): the charts start at the first data instead of showing
   * those steps as zeros. The last step is always drawn.
   */
  function stepsWithoutData(s) {
    if (s.dataSince === null || s.dataSince === undefined) return 0;
    var first = Math.floor(s.dataSince / s.stepSeconds) * s.stepSeconds;
    var skip = 0;
    while (skip < s.buckets.length - 1 && s.buckets[skip] < first) skip++;
    return skip;
  }

  /** Time ticks no finer than the series' step (no ":05" seconds on per-minute data). */
  var TIME_INCRS = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
  function timeAxis(s) {
    return { incrs: TIME_INCRS.filter(function (i) { return i >= s.stepSeconds; }) };
  }
  /** One step alone is drawn across its own length (uPlot cannot make a range of one time). */
  function timeRange(s, xs) {
    return xs.length === 1 ? [xs[0], xs[0] + s.stepSeconds] : undefined;
  }

  function drawSeries(s) {
    var labels = s.series.map(function (l) { return l.key; });
    var skip = stepsWithoutData(s);
    var xs = s.buckets.slice(skip);
    var rate = s.series.map(function (l) { return l.bytes.slice(skip).map(function (b) { return b / s.stepSeconds; }); });
    plot('chart-volume', labels, [xs].concat(rate), { format: fmtRate, xAxis: timeAxis(s), xRange: timeRange(s, xs) });
    $('volume-title').textContent = 'Rate by ' + DIMENSION_NAMES[s.dimension] + ' (bytes/s)';
    // What was drawn, summed: must equal the summary's totals.
    var transfers = 0, bytes = 0, errors = 0, denied = 0;
    var perMinute = s.stepSeconds / 60;
    var t = s.buckets.map(function () { return 0; }), e = t.slice(), d = t.slice();
    s.series.forEach(function (l) {
      l.transfers.forEach(function (v, i) { transfers += v; t[i] += v / perMinute; });
      l.bytes.forEach(function (v) { bytes += v; });
      l.errors.forEach(function (v, i) { errors += v; e[i] += v / perMinute; });
      l.denied.forEach(function (v, i) { denied += v; d[i] += v / perMinute; });
    });
    var v = $('chart-volume');
    v.setAttribute('data-total-transfers', String(transfers));
    v.setAttribute('data-total-bytes', String(bytes));
    v.setAttribute('data-series', labels.join('\n'));
    v.setAttribute('data-x-from', String(xs[0]));
    $('chart-errors').setAttribute('data-x-from', String(xs[0]));
    plot('chart-errors', ['transfers', 'failed', 'permission denied'], [xs, t.slice(skip), e.slice(skip), d.slice(skip)], {
      format: function (x) { return x >= 100 ? fmtInt(x) : x.toFixed(1); },
      series: function (i) { return { stroke: ['#1f5fbf', '#c4320a', '#ae3ec9'][i] }; },
      xAxis: timeAxis(s),
      xRange: timeRange(s, xs),
    });
    var c = $('chart-errors');
    c.setAttribute('data-total-errors', String(errors));
    c.setAttribute('data-total-denied', String(denied));
  }

  function drawHistogram(id, h, format) {
    var xs = h.bins.map(function (b, i) { return i; });
    var labels = h.bins.map(function (b) { return format(b.lower); });
    var counts = h.bins.map(function (b) { return b.transfers; });
    plot(id, ['transfers'], [xs, counts], {
      time: false,
      xRange: [-0.6, Math.max(1, xs.length) - 0.4],
      format: function (x) { return fmtInt(x); },
      series: function () { return { fill: 'rgba(31,95,191,0.35)', paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }; },
      // Every bin a tick; a label on every k-th so that they do not overlap.
      xAxis: { splits: function () { return xs; }, values: function (u, vals) {
        var k = Math.max(1, Math.ceil(xs.length / Math.max(1, Math.floor(u.width / 90))));
        return vals.map(function (v) { return labels[v] !== undefined && v % k === 0 ? '≥ ' + labels[v] : ''; });
      } },
    });
    $(id).setAttribute('data-total-transfers', String(counts.reduce(function (a, b) { return a + b; }, 0)));
  }

  // --- tables ----------------------------------------------------------------------------
  /** columns: [header, value(row) -> text, numeric?] */
  function drawTable(id, rows, columns, barOf) {
    var table = $(id);
    table.textContent = '';
    var head = el('tr');
    columns.forEach(function (c) { head.appendChild(el('th', c[2] ? { class: 'n' } : {}, c[0])); });
    if (barOf) head.appendChild(el('th'));
    table.appendChild(head);
    var max = Math.max.apply(null, rows.map(function (r) { return barOf ? barOf(r) : 0; }).concat([1]));
    rows.forEach(function (r) {
      var tr = el('tr', { 'data-key': r.key });
      columns.forEach(function (c, i) {
        var td = el('td', c[2] ? { class: 'n' } : { class: i === 0 ? 'key' : '', title: i === 0 ? r.key : '' }, c[1](r));
        tr.appendChild(td);
      });
      if (barOf) {
        var td = el('td', { class: 'bar' });
        var bar = el('span');
        bar.style.width = Math.round((barOf(r) / max) * 100) + '%'; // CSSOM: a style attribute would break the CSP
        td.appendChild(bar);
        tr.appendChild(td);
      }
      table.appendChild(tr);
    });
    if (rows.length === 0) table.appendChild(el('tr')).appendChild(el('td', { colspan: String(columns.length + 1), class: 'none' }, 'nothing in this window'));
  }

  var key = ['', function (r) { return r.key; }];
  var volume = ['moved', function (r) { return fmtBytes(r.bytes); }, true];
  var count = ['transfers', function (r) { return fmtInt(r.transfers); }, true];
  var failed = ['failed', function (r) { return fmtInt(r.errors) + ' (' + fmtPct(r.errorRate) + ')'; }, true];
  var denied = ['denied', function (r) { return fmtInt(r.denied); }, true];
  var meanRate = ['mean rate', function (r) { return fmtRate(r.meanRate); }, true];

  function top(dimension, by, limit) {
    return api('api/top?dimension=' + dimension + '&window=' + state.window + '&by=' + by + '&limit=' + (limit || 10));
  }

  // --- the refresh loop ------------------------------------------------------------------
  var timer = null;
  var generation = 0;
  /** While the window has no data yet, look again after this long (not refreshMs), for a while. */
  var FIRST_DATA_RETRY_MS = 1000;
  var FIRST_DATA_PATIENCE_MS = 30000;
  var loadedAt = Date.now();
  var hasData = false;

  function refresh() {
    var mine = ++generation;
    var w = '&window=' + state.window;
    // Each part is drawn as soon as its answer is in (the page fills in quickly); the page is
    // "updated" when all are.
    function part(request, draw) {
      return request.then(function (r) {
        if (mine === generation) draw(r); // else a newer refresh (window changed) is under way
        return r;
      });
    }
    var table = function (id, columns, barOf, rows) { return function (r) { drawTable(id, rows ? rows(r) : r.rows, columns, barOf); }; };
    return Promise.all([
      part(api('api/summary?' + w.slice(1)), drawSummary),
      part(api('api/series?dimension=' + state.dimension + w), drawSeries),
      part(api('api/alerts'), drawAlerts),
      part(top('user', 'bytes'), table('top-user', [['user'].concat(key.slice(1)), volume, count, failed, denied], function (x) { return x.bytes; })),
      part(top('client_net', 'bytes'), table('top-client_net', [['network'].concat(key.slice(1)), volume, count, failed, denied], function (x) { return x.bytes; })),
      part(top('pool', 'slowest'), table('slowest-pool', [['pool'].concat(key.slice(1)), meanRate, count, volume])),
      part(top('error', 'transfers', 12), table('top-error', [['errorcode'].concat(key.slice(1)), count], function (x) { return x.transfers; }, function (r) { return r.rows.filter(function (x) { return x.key !== '0'; }); })),
      Promise.all([top('door', 'error_rate', 5), top('pool', 'error_rate', 5)]).then(function (r) {
        if (mine !== generation) return;
        var byRate = r[0].rows.map(function (x) { return Object.assign({}, x, { key: 'door ' + x.key }); })
          .concat(r[1].rows.map(function (x) { return Object.assign({}, x, { key: 'pool ' + x.key }); }))
          .sort(function (a, b) { return b.errorRate - a.errorRate; });
        drawTable('error-rate-door', byRate, [['door / pool'].concat(key.slice(1)), failed, count], function (x) { return x.errorRate; });
      }),
      part(top('vo', 'bytes'), table('top-vo', [['VO'].concat(key.slice(1)), volume, count, failed], function (x) { return x.bytes; })),
      part(api('api/histogram?metric=duration' + w), function (h) { drawHistogram('hist-duration', h, function (ms) { return fmtMs(ms); }); }),
      part(api('api/histogram?metric=rate' + w), function (h) { drawHistogram('hist-rate', h, function (b) { return fmtBytes(b) + '/s'; }); }),
    ]).then(function (r) {
      if (mine !== generation) return;
      hasData = r[0].transfers > 0 || hasData;
      $('updated').textContent = 'updated ' + fmtTime(r[0].generatedAt);
      $('problem').textContent = '';
      document.body.removeAttribute('data-loading');
      document.body.setAttribute('data-generation', String(mine));
      document.body.setAttribute('data-window', state.window);
      document.body.setAttribute('data-dimension', state.dimension);
    }).catch(function (err) {
      $('problem').textContent = 'cannot read the probe: ' + err.message;
    });
  }

  function schedule() {
    clearTimeout(timer);
    var eager = !hasData && state.refreshMs > 0 && Date.now() - loadedAt < FIRST_DATA_PATIENCE_MS;
    var wait = eager ? Math.min(state.refreshMs, FIRST_DATA_RETRY_MS) : state.refreshMs;
    if (wait > 0) timer = setTimeout(function () { refresh().then(schedule); }, wait);
  }

  function remember() {
    var p = new URLSearchParams(location.search);
    p.set('window', state.window);
    p.set('dimension', state.dimension);
    history.replaceState(null, '', '?' + p.toString());
  }

  // The first data is asked for at once, beside the page's settings (api/meta).
  var first = refresh();
  api('api/meta').then(function (meta) {
    var select = $('dimension');
    meta.dimensions.forEach(function (d) {
      var o = el('option', { value: d }, DIMENSION_NAMES[d] || d);
      if (d === state.dimension) o.selected = true;
      select.appendChild(o);
    });
    select.addEventListener('change', function () {
      state.dimension = select.value;
      remember();
      refresh().then(schedule);
    });
    document.querySelectorAll('.windows button').forEach(function (b) {
      b.setAttribute('aria-pressed', String(b.getAttribute('data-window') === state.window));
      b.addEventListener('click', function () {
        state.window = b.getAttribute('data-window');
        document.querySelectorAll('.windows button').forEach(function (x) { x.setAttribute('aria-pressed', String(x === b)); });
        remember();
        refresh().then(schedule);
      });
    });
    window.addEventListener('resize', function () {
      for (var id in charts) charts[id].chart.setSize({ width: chartWidth(id), height: 220 });
    });
    return first.then(schedule);
  }).catch(function (err) {
    $('problem').textContent = 'cannot read the probe: ' + err.message;
  });
})();
