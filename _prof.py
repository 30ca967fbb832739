import time, mxnet as mx, sys
from mxnet import autograd, gluon, profiler
import igcv3_gluon
net = igcv3_gluon.get_model('cifar_igcv3_d_1.0', depths=[1,1,1,1,1,1,1]); net.initialize(mx.init.Xavier()); net.hybridize(static_alloc=True, static_shape=True)
tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate':0.01})
bs=64
x = mx.nd.random.uniform(shape=(bs,3,32,32)); y = mx.nd.zeros((bs,))
L = gluon.loss.SoftmaxCrossEntropyLoss()
def step():
    with autograd.record(): l = L(net(x), y)
    l.backward(); tr.step(bs); l.wait_to_read()
step(); step()
profiler.set_config(profile_all=True, aggregate_stats=True, filename='/tmp/prof.json')
profiler.set_state('run')
for i in range(3): step()
mx.nd.waitall()
profiler.set_state('stop')
print(profiler.dumps(sort_by='total')[:3500])
