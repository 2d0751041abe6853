/*
 * The dashboard page of dcache-transfer-probe: reads the probe's JSON API (api/...) and draws
 * it with uPlot (served by the probe from its npm package). Every number shown comes from one
 * API response, and the page writes the exact values it drew into data-* attributes so that a
 * test can compare them with the API. Refreshes every 5 s (?refresh=N to change, 0 to stop);
 * until the first data, every second. Until the first answers it says it is loading (and
 * <body data-loading>); each part is drawn as soon as its answer is in.
 *
 * The outlook (api/outlook, api/outlook/keys) is not part of that loop: a forecast of daily
 * totals changes once a day, so it is read when the page opens and when its selection (scope,
 * key, metric) changes, and it fails on its own (the rest of the page goes on without it).
 */
(function () {
  'use strict';

  var params = new URLSearchParams(location.search);
  var state = {
    window: params.get('window') || 'hour',
    dimension: params.get('dimension') || 'direction',
    outlook: { scope: params.get('outlook') || 'site', key: params.get('outlook-key') || '', metric: params.get('outlook-metric') || 'written' },
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
    p.set('outlook', state.outlook.scope);
    if (state.outlook.scope === 'site') p.delete('outlook-key');
    else p.set('outlook-key', state.outlook.key);
    p.set('outlook-metric', state.outlook.metric);
    history.replaceState(null, '', '?' + p.toString());
  }


  // --- the outlook (api/outlook): history, forecast and its intervals --------------------
  var OUTLOOK_SCOPES = ['site', 'vo', 'storage_class'];
  var OUTLOOK_METRICS = ['written', 'read', 'growth'];
  var OUTLOOK_HORIZONS = [['months3', '3 months'], ['months6', '6 months'], ['months12', '12 months']];
  var OUTLOOK_NAMES = { site: 'the site', vo: 'VO', storage_class: 'storage class' };
  var outlookKeys = { vo: [], storage_class: [] };
  var outlookGeneration = 0;
  var outlookKeysProblem = ''; // shown beside the outlook's own problem, which a new answer clears

  /** The query of the selection, the same for the chart's JSON and the exports. */
  function outlookQuery(o) {
    var q = new URLSearchParams();
    q.set('scope', o.scope);
    if (o.scope !== 'site') q.set('key', o.key);
    q.set('metric', o.metric);
    return q.toString();
  }

  /** 'YYYY-MM-DD' (UTC) to epoch seconds. */
  function dayToSeconds(day) {
    var p = day.split('-');
    return Date.UTC(Number(p[0]), Number(p[1]) - 1, Number(p[2])) / 1000;
  }

  function fmtBytesOrDash(n) { return n === null || n === undefined ? '–' : fmtBytes(n); }

  /** uPlot's columns: one x per day of history and forecast, each series null where it has no value. */
  function outlookColumns(o) {
    var days = {};
    o.history.forEach(function (h) { days[h.day] = true; });
    o.forecast.forEach(function (f) { days[f.day] = true; });
    var sorted = Object.keys(days).sort();
    var at = {};
    sorted.forEach(function (d, i) { at[d] = i; });
    var empty = function () { return sorted.map(function () { return null; }); };
    var history = empty(), point = empty(), lower80 = empty(), upper80 = empty(), lower95 = empty(), upper95 = empty();
    o.history.forEach(function (h) { history[at[h.day]] = h.value === undefined ? null : h.value; });
    o.forecast.forEach(function (f) {
      var i = at[f.day];
      point[i] = f.point; lower80[i] = f.lower80; upper80[i] = f.upper80; lower95[i] = f.lower95; upper95[i] = f.upper95;
    });
    return [sorted.map(dayToSeconds), history, point, upper95, lower95, upper80, lower80];
  }

  /** The capacity's date and its interval on the chart: a line at the point, the interval shaded. */
  function drawCapacityMarker(u, capacity) {
    if (!capacity || !capacity.reachedOn) return;
    var r = capacity.reachedOn;
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height, left = u.bbox.left, right = u.bbox.left + u.bbox.width;
    var pos = function (day) { return day ? Math.min(right, Math.max(left, u.valToPos(dayToSeconds(day), 'x', true))) : null; };
    ctx.save();
    if (r.earliest) {
      var from = pos(r.earliest), to = r.latest ? pos(r.latest) : right;
      ctx.fillStyle = 'rgba(196,50,10,0.08)';
      ctx.fillRect(from, top, Math.max(1, to - from), height);
    }
    if (r.point) {
      var x = pos(r.point);
      ctx.strokeStyle = '#c4320a';
      ctx.lineWidth = 1.5 * (window.devicePixelRatio || 1);
      ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = '#c4320a';
      ctx.font = u.axes[1].font[0];
      ctx.textAlign = x > right - 80 ? 'right' : 'left';
      ctx.fillText('capacity', x + (ctx.textAlign === 'right' ? -4 : 4), top + 14 * (window.devicePixelRatio || 1));
    }
    ctx.restore();
  }

  function drawOutlookChart(o) {
    var id = 'chart-outlook';
    var data = outlookColumns(o);
    var band = function (alpha) { return { stroke: 'rgba(232,89,12,' + alpha + ')', width: 1, points: { show: false } }; };
    var value = function (u, v) { return v === null ? '–' : fmtBytes(v); };
    var series = [{ label: 'day', value: function (u, v) { return v === null ? '–' : new Date(v * 1000).toISOString().slice(0, 10); } },
      { label: 'history', stroke: '#1f5fbf', width: 1, points: { show: false }, value: value },
      { label: 'forecast', stroke: '#e8590c', width: 1.5, points: { show: false }, value: value },
      Object.assign({ label: '95 % upper', value: value }, band(0.3)),
      Object.assign({ label: '95 % lower', value: value }, band(0.3)),
      Object.assign({ label: '80 % upper', value: value }, band(0.5)),
      Object.assign({ label: '80 % lower', value: value }, band(0.5)),
    ];
    var growth = o.metric === 'growth';
    if (charts[id]) charts[id].chart.destroy();
    $(id).textContent = ''; // the loading note
    var chart = new uPlot({
      width: chartWidth(id),
      height: 260,
      series: series,
      // The 95 % band under the 80 % band (series: upper, lower).
      bands: [{ series: [3, 4], fill: 'rgba(232,89,12,0.10)' }, { series: [5, 6], fill: 'rgba(232,89,12,0.22)' }],
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'); }, // days are UTC days
      scales: {
        x: { time: true },
        // Volumes from zero; growth may be negative.
        y: { range: function (u, min, max) {
          var lo = growth ? Math.min(0, min) : 0;
          return uPlot.rangeNum(lo, max > lo ? max : lo + 1, 0.1, true);
        } },
      },
      axes: [{}, { size: axisSize, values: function (u, vals) { return vals.map(fmtBytes); } }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [function (u) { drawCapacityMarker(u, o.capacity); }] },
    }, data, $(id));
    charts[id] = { chart: chart, signature: '', height: 260 };
    var box = $(id);
    box.uplot = chart; // the browser test reads its series, bands and axes
    box.setAttribute('data-history-days', String(o.history.filter(function (h) { return h.value !== null && h.value !== undefined; }).length));
    box.setAttribute('data-forecast-days', String(o.forecast.length));
    box.setAttribute('data-first-day', data[0].length ? new Date(data[0][0] * 1000).toISOString().slice(0, 10) : '');
    box.setAttribute('data-last-day', data[0].length ? new Date(data[0][data[0].length - 1] * 1000).toISOString().slice(0, 10) : '');
  }

  function drawHorizons(o) {
    var table = $('outlook-horizons');
    table.textContent = '';
    var head = el('tr');
    [['ahead', false], ['total', true], ['80 % interval', true]].forEach(function (c) { head.appendChild(el('th', c[1] ? { class: 'n' } : {}, c[0])); });
    table.appendChild(head);
    OUTLOOK_HORIZONS.forEach(function (h) {
      var x = (o.horizons || {})[h[0]];
      if (!x) return;
      var tr = el('tr', { 'data-horizon': h[0], 'data-point': String(x.point), 'data-lower80': String(x.lower80), 'data-upper80': String(x.upper80) });
      tr.appendChild(el('td', {}, 'next ' + h[1]));
      tr.appendChild(el('td', { class: 'n', 'data-testid': 'horizon-point' }, fmtBytesOrDash(x.point)));
      tr.appendChild(el('td', { class: 'n', 'data-testid': 'horizon-interval' }, fmtBytesOrDash(x.lower80) + ' – ' + fmtBytesOrDash(x.upper80)));
      table.appendChild(tr);
    });
  }

  function drawCapacity(o) {
    var p = $('outlook-capacity');
    p.textContent = '';
    var c = o.capacity;
    if (!c) {
      p.hidden = true;
      ['data-bytes', 'data-point', 'data-earliest', 'data-latest'].forEach(function (a) { p.removeAttribute(a); });
      return;
    }
    var r = c.reachedOn || { point: null, earliest: null, latest: null };
    p.hidden = false;
    p.setAttribute('data-bytes', String(c.bytes));
    p.setAttribute('data-point', String(r.point));
    p.setAttribute('data-earliest', String(r.earliest));
    p.setAttribute('data-latest', String(r.latest));
    p.appendChild(el('span', { class: 'kind' }, 'capacity'));
    p.appendChild(el('span', {}, fmtBytes(c.bytes) + (c.basis ? ' (' + c.basis + ')' : '') + ': '));
    // earliest / latest: the dates the forecast's interval gives (null: not within the forecast).
    var range = [r.earliest ? 'earliest ' + r.earliest : '', r.earliest || r.point ? 'latest ' + (r.latest || 'after the forecast') : ''].filter(Boolean).join(', ');
    var when = (r.point ? 'reached on ' + r.point : 'not reached within the forecast') + (range ? ' (' + range + ')' : '');
    p.appendChild(el('strong', { 'data-testid': 'capacity-date' }, when));
  }

  function outlookTitle(o) {
    var what = { written: 'Bytes written per day', read: 'Bytes read per day', growth: 'Growth per day' }[o.metric] || o.metric;
    return 'Outlook: ' + what + ', ' + (o.scope === 'site' ? 'the site' : OUTLOOK_NAMES[o.scope] + ' ' + o.key);
  }

  function drawOutlook(o) {
    drawOutlookChart(o);
    $('outlook-title').textContent = outlookTitle(o);
    $('outlook-method').textContent = 'Forecast by ' + o.method + ' from ' + o.historyDays + ' days of history; shaded: the 80 % and 95 % prediction intervals (' + (o.unit || 'bytes/day') + '). Made ' + String(o.generatedAt).replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') + '.' + (o.basis ? ' Series: ' + o.basis + '.' : '');
    $('outlook-method').setAttribute('data-method', o.method);
    $('outlook-method').setAttribute('data-growth-measured', String(o.growthMeasured === true));
    drawHorizons(o);
    drawCapacity(o);
  }

  /** The selector's state into the controls and the export links. */
  function showOutlookSelection() {
    var o = state.outlook;
    $('outlook-scope').value = o.scope;
    $('outlook-metric').value = o.metric;
    var keySelect = $('outlook-key');
    keySelect.textContent = '';
    keySelect.hidden = o.scope === 'site';
    if (o.scope !== 'site') {
      outlookKeys[o.scope].forEach(function (k) {
        var opt = el('option', { value: k }, k);
        if (k === o.key) opt.selected = true;
        keySelect.appendChild(opt);
      });
    }
    var q = outlookQuery(o);
    $('outlook-csv').setAttribute('href', 'api/outlook.csv?' + q);
    $('outlook-json').setAttribute('href', 'api/outlook?' + q);
  }

  function loadOutlook() {
    var mine = ++outlookGeneration;
    var o = state.outlook;
    var section = $('outlook');
    section.setAttribute('data-loading', 'true');
    showOutlookSelection();
    if (charts['chart-outlook']) $('outlook-method').textContent = 'loading the outlook…';
    return api('api/outlook?' + outlookQuery(o)).then(function (answer) {
      if (mine !== outlookGeneration) return; // a newer selection is under way
      $('outlook-problem').textContent = outlookKeysProblem;
      drawOutlook(answer);
      section.setAttribute('data-scope', o.scope);
      section.setAttribute('data-key', o.scope === 'site' ? '' : o.key);
      section.setAttribute('data-metric', o.metric);
      section.setAttribute('data-generation', String(mine));
      section.removeAttribute('data-error');
      section.removeAttribute('data-loading');
    }).catch(function (err) {
      if (mine !== outlookGeneration) return;
      $('outlook-problem').textContent = 'cannot read the outlook: ' + err.message + (outlookKeysProblem ? '; ' + outlookKeysProblem : '');
      if (!charts['chart-outlook']) $('chart-outlook').textContent = 'no outlook';
      else $('outlook-method').textContent = '';
      section.setAttribute('data-error', 'true');
      section.removeAttribute('data-loading');
    });
  }

  /** A selection the keys allow: a known scope and metric, and a key the scope has (else its first). */
  function settleOutlookSelection() {
    var o = state.outlook;
    if (OUTLOOK_SCOPES.indexOf(o.scope) < 0) o.scope = 'site';
    if (OUTLOOK_METRICS.indexOf(o.metric) < 0) o.metric = 'written';
    if (o.scope !== 'site') {
      var keys = outlookKeys[o.scope];
      if (keys.length === 0) { o.scope = 'site'; o.key = ''; }
      else if (keys.indexOf(o.key) < 0) o.key = keys[0];
    }
    if (o.scope === 'site') o.key = '';
  }

  function startOutlook() {
    var scope = $('outlook-scope'), keySelect = $('outlook-key'), metric = $('outlook-metric');
    var changed = function () { settleOutlookSelection(); remember(); loadOutlook(); };
    scope.addEventListener('change', function () { state.outlook.scope = scope.value; state.outlook.key = ''; changed(); });
    keySelect.addEventListener('change', function () { state.outlook.key = keySelect.value; changed(); });
    metric.addEventListener('change', function () { state.outlook.metric = metric.value; changed(); });
    // The site's outlook needs no keys: asked for at once; a VO's or storage class's after them.
    var early = state.outlook.scope === 'site' && OUTLOOK_METRICS.indexOf(state.outlook.metric) >= 0;
    if (early) loadOutlook();
    return api('api/outlook/keys').then(function (k) {
      outlookKeys = { vo: (k.vo || []).slice(), storage_class: (k.storage_class || []).slice() };
    }).catch(function (err) {
      outlookKeys = { vo: [], storage_class: [] };
      outlookKeysProblem = 'cannot read the outlook\u2019s VOs and storage classes: ' + err.message;
      $('outlook-problem').textContent = outlookKeysProblem;
    }).then(function () {
      ['vo', 'storage_class'].forEach(function (s) {
        var opt = scope.querySelector('option[value="' + s + '"]');
        opt.disabled = outlookKeys[s].length === 0;
        opt.textContent = (s === 'vo' ? 'a VO' : 'a storage class') + (opt.disabled ? ' (none yet)' : '');
      });
      settleOutlookSelection();
      if (early) showOutlookSelection(); // the key list, now known
      else loadOutlook();
    });
  }

  // The first data is asked for at once, beside the page's settings (api/meta).
  var first = refresh();
  startOutlook();
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
      for (var id in charts) charts[id].chart.setSize({ width: chartWidth(id), height: charts[id].height || 220 });
    });
    return first.then(schedule);
  }).catch(function (err) {
    $('problem').textContent = 'cannot read the probe: ' + err.message;
  });
})();
