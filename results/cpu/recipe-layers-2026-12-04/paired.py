"""Paired differences of the runs in runs.jsonl (this folder), gold F1 per run read from the logs.
Run from this folder: python3 paired.py > paired.md"""
import json, re, statistics as st, sys
runs = [json.loads(l) for l in open('runs.jsonl')]
# gold F1 per run from the logs (old rows: the committed recipe log; new: this compare's log)
gold = {}
for path in ['../recipe-2026-12-04/log.txt', 'log.txt']:
    for line in open(path):
        m = re.match(r'(.+) seed (\d+): test F1 .* gold F1 ([\d.]+)', line)
        if m: gold[(m.group(1), int(m.group(2)))] = float(m.group(3))
def fields(r):
    return {'test F1': 100*r['test']['f1'], 'test EM': 100*r['test']['exact_match'],
            'gold F1': gold.get((r['variant'], r['seed'])),
            'R@1': 100*r['retrieval']['accuracy_at_1'], 'Flipkart R@1': 100*r['match_set']['accuracy_at_1'],
            'train s': r['train_seconds']}
by = {}
for r in runs: by.setdefault(r['variant'], {})[r['seed']] = fields(r)
names = list(by)
keys = ['test F1','test EM','gold F1','R@1','Flipkart R@1']
def ms(xs):
    return f"{st.mean(xs):.2f} ± {st.stdev(xs) if len(xs)>1 else 0:.2f}"
print('| variant | seeds | ' + ' | '.join(keys) + ' | train s/run |')
print('|---' * (len(keys)+3) + '|')
for n in names:
    seeds = sorted(by[n])
    print(f"| {n} | {len(seeds)} | " + ' | '.join(ms([by[n][s][k] for s in seeds]) for k in keys) + f" | {', '.join(str(round(by[n][s]['train s'])) for s in seeds)} |")
for ref in ['baseline', 'infonce τ=0.05 λ=0.1 + distill 1']:
    print(f"\nPaired differences against `{ref}` (same seed), points: mean ± sd [per seed]\n")
    print('| variant | ' + ' | '.join(keys) + ' |')
    print('|---' * (len(keys)+1) + '|')
    for n in names:
        if n == ref or (ref != 'baseline' and 'layers' not in n): continue
        seeds = sorted(set(by[n]) & set(by[ref]))
        cells = []
        for k in keys:
            d = [by[n][s][k] - by[ref][s][k] for s in seeds]
            cells.append(f"{st.mean(d):+.2f} ± {st.stdev(d) if len(d)>1 else 0:.2f} [" + ', '.join(f"{x:+.2f}" for x in d) + "]")
        print(f"| {n} | " + ' | '.join(cells) + ' |')
