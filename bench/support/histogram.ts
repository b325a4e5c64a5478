// Latency percentiles with HdrHistogram, in nanoseconds, summarised in microseconds.

import * as hdr from "hdr-histogram-js";

export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  // 1 ns to 60 s at 3 significant digits.
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60e9, numberOfSignificantValueDigits: 3 });
}

export interface LatencySummary {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
}

export function summarise(h: Histogram): LatencySummary {
  const us = (ns: number): number => Math.round(ns / 10) / 100;
  return {
    count: h.totalCount,
    p50Us: us(h.getValueAtPercentile(50)),
    p90Us: us(h.getValueAtPercentile(90)),
    p99Us: us(h.getValueAtPercentile(99)),
    maxUs: us(h.maxValue),
  };
}
