/*
 * The dashboard page of dcache-transfer-probe: reads the probe's JSON API (api/...) and draws
 * it with uPlot (served by the probe from its npm package). Every number shown comes from one
 * API response, and the page writes the exact values it drew into data-* attributes so that a
 * test can compare them with the API. Refreshes every 5 s (?refresh=N to change, 0 to stop).
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

  /** Creates the chart, or gives it new data when its series are the same. */
  function plot(id, labels, data, opts) {
    var signature = labels.join('\u0001');
    var c = charts[id];
    if (c && c.signature === signature) {
      c.chart.setData(data);
      return;
    }
    if (c) c.chart.destroy();
    var series = [{}].concat(labels.map(function (label, i) {
      return Object.assign({ label: label, stroke: COLORS[i % COLORS.length], width: 1.5, value: function (u, v) { return v === null ? '–' : opts.format(v); } }, opts.series ? opts.series(i) : {});
    }));
    var chart = new uPlot({
      width: chartWidth(id),
      height: 220,
      series: series,
      scales: { x: opts.xRange ? { time: false, range: opts.xRange } : { time: opts.time !== false } },
      axes: [opts.xAxis || {}, { size: 70, values: function (u, vals) { return vals.map(opts.format); } }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    }, data, $(id));
    charts[id] = { chart: chart, signature: signature };
  }

  function drawSeries(s) {
    var labels = s.series.map(function (l) { return l.key; });
    var rate = s.series.map(function (l) { return l.bytes.map(function (b) { return b / s.stepSeconds; }); });
    plot('chart-volume', labels, [s.buckets].concat(rate), { format: fmtRate });
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
    plot('chart-errors', ['transfers', 'failed', 'permission denied'], [s.buckets, t, e, d], {
      format: function (x) { return x >= 100 ? fmtInt(x) : x.toFixed(1); },
      series: function (i) { return { stroke: ['#1f5fbf', '#c4320a', '#ae3ec9'][i] }; },
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

  function refresh() {
    var mine = ++generation;
    var w = '&window=' + state.window;
    return Promise.all([
      api('api/summary?' + w.slice(1)),
      api('api/series?dimension=' + state.dimension + w),
      api('api/alerts'),
      top('user', 'bytes'),
      top('client_net', 'bytes'),
      top('pool', 'slowest'),
      top('error', 'transfers', 12),
      top('door', 'error_rate', 5),
      top('pool', 'error_rate', 5),
      top('vo', 'bytes'),
      api('api/histogram?metric=duration' + w),
      api('api/histogram?metric=rate' + w),
    ]).then(function (r) {
      if (mine !== generation) return; // a newer refresh (window changed) is under way
      drawSummary(r[0]);
      drawSeries(r[1]);
      drawAlerts(r[2]);
      drawTable('top-user', r[3].rows, [['user'].concat(key.slice(1)), volume, count, failed, denied], function (x) { return x.bytes; });
      drawTable('top-client_net', r[4].rows, [['network'].concat(key.slice(1)), volume, count, failed, denied], function (x) { return x.bytes; });
      drawTable('slowest-pool', r[5].rows, [['pool'].concat(key.slice(1)), meanRate, count, volume]);
      drawTable('top-error', r[6].rows.filter(function (x) { return x.key !== '0'; }), [['errorcode'].concat(key.slice(1)), count], function (x) { return x.transfers; });
      var byRate = r[7].rows.map(function (x) { return Object.assign({}, x, { key: 'door ' + x.key }); })
        .concat(r[8].rows.map(function (x) { return Object.assign({}, x, { key: 'pool ' + x.key }); }))
        .sort(function (a, b) { return b.errorRate - a.errorRate; });
      drawTable('error-rate-door', byRate, [['door / pool'].concat(key.slice(1)), failed, count], function (x) { return x.errorRate; });
      drawTable('top-vo', r[9].rows, [['VO'].concat(key.slice(1)), volume, count, failed], function (x) { return x.bytes; });
      drawHistogram('hist-duration', r[10], function (ms) { return fmtMs(ms); });
      drawHistogram('hist-rate', r[11], function (b) { return fmtBytes(b) + '/s'; });
      $('updated').textContent = fmtTime(r[0].generatedAt);
      $('problem').textContent = '';
      document.body.setAttribute('data-generation', String(mine));
      document.body.setAttribute('data-window', state.window);
      document.body.setAttribute('data-dimension', state.dimension);
    }).catch(function (err) {
      $('problem').textContent = 'cannot read the probe: ' + err.message;
    });
  }

  function schedule() {
    clearTimeout(timer);
    if (state.refreshMs > 0) timer = setTimeout(function () { refresh().then(schedule); }, state.refreshMs);
  }

  function remember() {
    var p = new URLSearchParams(location.search);
    p.set('window', state.window);
    p.set('dimension', state.dimension);
    history.replaceState(null, '', '?' + p.toString());
  }

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
    return refresh().then(schedule);
  }).catch(function (err) {
    $('problem').textContent = 'cannot read the probe: ' + err.message;
  });
})();
