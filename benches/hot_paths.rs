//! Micro-benchmarks of the hot paths (filled in by the benchmark work).

use criterion::Criterion;
use criterion::criterion_group;
use criterion::criterion_main;

fn placeholder(c: &mut Criterion) {
    c.bench_function("noop", |b| b.iter(|| 1 + 1));
}

criterion_group!(benches, placeholder);
criterion_main!(benches);
