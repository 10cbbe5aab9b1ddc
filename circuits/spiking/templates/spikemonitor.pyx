{# pcsim's Cython template for a SpikeMonitor (circuits.spiking.spike_record): what Brian2's
   own does, with the recorded arrays written through pointers to their data, not typed
   memoryviews, whose utility code made each monitor's extension ~35,000 lines of C++ (~5 s
   to compile cold) against ~14,000 for the other code objects.
   USES_VARIABLES { N, _clock_t, count, _source_start, _source_stop } #}
{% extends 'common_group.pyx' %}

{% block maincode %}

    {% set _eventspace = get_array_name(eventspace_variable) %}

    cdef size_t _num_events = {{_eventspace}}[_num{{_eventspace}}-1]
    cdef size_t _first, _last, _old, _new, _j
    cdef _numpy.ndarray _data
    {% for varname, var in record_variables | dictsort %}
    cdef {{cpp_dtype(var.dtype)}}* _{{varname}}_at
    {% endfor %}
    if _num_events > 0:
        # the events of neurons [_source_start, _source_stop), in increasing order
        _first = _num_events
        _last = _num_events
        for _j in range(_num_events):
            if {{_eventspace}}[_j] >= _source_start:
                _first = _j
                break
        for _j in range(_num_events - 1, _first - 1, -1):
            if {{_eventspace}}[_j] < _source_stop:
                break
            _last = _j
        _num_events = _last - _first
        if _num_events > 0:
            _vectorisation_idx = 1
            {{ scalar_code|autoindent }}
            _old = {{N}}
            _new = _old + _num_events
            _owner.resize(_new)
            {{N}} = _new
            {% for varname, var in record_variables | dictsort %}
            _data = {{get_array_name(var, access_data=False)}}.data
            _{{varname}}_at = <{{cpp_dtype(var.dtype)}}*> _numpy.PyArray_DATA(_data)
            {% endfor %}
            for _j in range(_first, _last):
                _idx = {{_eventspace}}[_j]
                _vectorisation_idx = _idx
                {{ vector_code|autoindent }}
                {% for varname in record_variables | sort %}
                _{{varname}}_at[_old + _j - _first] = _to_record_{{varname}}
                {% endfor %}
                {{count}}[_idx - _source_start] += 1
{% endblock %}
