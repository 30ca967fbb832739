import time, mxnet as mx, sys
from mxnet import autograd, gluon
import igcv3_gluon
def bench(name, n=5, bs=64, **kw):
    net = igcv3_gluon.get_model(name, **kw); net.initialize(mx.init.Xavier()); net.hybridize(static_alloc=True, static_shape=True)
    tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate':0.01})
    x = mx.nd.random.uniform(shape=(bs,3,32,32)); y = mx.nd.zeros((bs,))
    L = gluon.loss.SoftmaxCrossEntropyLoss()
    for i in range(n+2):
        if i == 2: t = time.time()
        with autograd.record(): l = L(net(x), y)
        l.backward(); tr.step(bs); l.wait_to_read()
    tt = (time.time()-t)/n
    t = time.time()
    for i in range(n): net(x).wait_to_read()
    ti = (time.time()-t)/n
    print('%-28s %s train %.0f img/s  infer %.0f img/s' % (name, kw, bs/tt, bs/ti))
for a in [a for a in sys.argv[1:] if a != "d"]:
    if a == 'nop1': bench('cifar_igcv3_d_0.5', p1=False)
    elif a == 'g1': bench('cifar_igcv3_d_0.5', groups=(1,1))
    else: bench(a)
if not sys.argv[1:]:
    bench('cifar_igcv3_d_0.5', multiplier=0.5)
    bench('cifar_igcv3_d_0.5', multiplier=0.25)
    bench('cifar_igcv3_d_0.5', multiplier=0.5, bs=32)
if sys.argv[1:] == ['d']:
    bench('cifar_igcv3_d_0.5', multiplier=0.5, depths=[1,1,2,2,1,1,1])
    bench('cifar_igcv3_d_0.5', multiplier=0.5, depths=[1,1,1,1,1,1,1])
    bench('cifar_igcv3_d_0.5', multiplier=0.75, depths=[1,1,1,1,1,1,1])
    bench('cifar_igcv3_d_0.5', multiplier=1.0, depths=[1,1,1,1,1,1,1])
